"""``structured_output: auto``: the JSON schema on every request, free text where an endpoint
rejects it.

When an endpoint answers a request asking with the schema with a 400 naming the response
format (kind ``schema_rejected``: vLLM's older servers, Ollama, many proxies), the shard's
request loop (:mod:`vqaflow.requests`) asks that record again without the schema, asks the
rest of the shard in free text, says so once, and notes the endpoint in the shard's marker,
``journal/<shard>.structured_output`` beside its journal. Every later request of that shard to
that endpoint (the repair, the judge on the same model, a rerun) starts in free text, so a
shard sees at most one rejection. The marker also notes an endpoint that answered with the
schema, so later stages need not try it one request at a time again. A free-text request has
its own fingerprint (no schema in the backend's identity), and its answer's ``generation``
carries ``free_text_fallback: true``. Delete the marker to try the schema again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .backends.openai_protocol import public_url
from .digests import value_digest

# added to the generation of an answer asked in free text because the endpoint rejected the schema
FALLBACK_NOTE = {"free_text_fallback": True}
ERROR_CHARS = 300


def marker_path(journal_path: str | Path) -> Path:
    """The shard's marker: whether each endpoint took the schema, one JSON line a finding."""
    return Path(journal_path).with_suffix(".structured_output")


def endpoint_key(identity: dict) -> str:
    """Which endpoint a backend asks (kind, base URL and model; not its sampling)."""
    return value_digest([identity.get("backend"), identity.get("base_url"), identity.get("model")], 16)


def takes_schema(journal_path: str | Path, identity: dict) -> bool | None:
    """What the shard's marker says of the endpoint of ``identity``: True (it answered with the
    schema), False (it rejected it) or None (nothing yet); the last finding wins."""
    path = marker_path(journal_path)
    if not path.exists():
        return None
    key, found = endpoint_key(identity), None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            if entry.get("endpoint") == key:
                found = bool(entry["takes_schema"])
        except (ValueError, AttributeError, KeyError, TypeError):
            continue  # a torn line
    return found


def mark(journal_path: str | Path, identity: dict, stage: str, takes: bool, error: str | None = None) -> Path:
    """Note in the shard's marker whether the endpoint of ``identity`` took the schema."""
    path = marker_path(journal_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "endpoint": endpoint_key(identity),
        "url": public_url(identity.get("base_url")) if identity.get("base_url") else None,
        "model": identity.get("model"),
        "takes_schema": takes,
        "stage": stage,
        "error": error[:ERROR_CHARS] if error else None,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def notice(shard: str, identity: dict, stage: str, error: str, path: Path) -> str:
    """The one line told when a shard falls back to free text."""
    where = public_url(identity.get("base_url")) if identity.get("base_url") else "the endpoint"
    return (f"{shard}: {where} rejected the JSON schema (response_format) for {stage}: {error}; "
            f"structured_output: auto goes on in free text for this shard (answers are read from text; "
            f"{path} remembers it, delete it to try the schema again)")
