"""The run's two digest formats, one place each (standard library only).

- :func:`content_digest`: what bytes are — ``"sha256:<hex>"`` of an image's encoded bytes
  (the dataset's name for an embedded image, image dedup's exact key, the request
  fingerprint's image part).
- :func:`value_digest`: what a JSON value is — the hex sha256 of its canonical JSON,
  shortened to ``chars`` (request fingerprints, batch state). The JSON is
  ``json.dumps(value, sort_keys=True)``: the digests journals and batch state files already hold.
"""

from __future__ import annotations

import hashlib
import json

FINGERPRINT_CHARS = 32


def content_digest(data: bytes) -> str:
    """``"sha256:<hex>"`` of ``data``."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def value_digest(value: object, chars: int = FINGERPRINT_CHARS) -> str:
    """The first ``chars`` hex digits of the sha256 of ``value``'s canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:chars]
