"""The one place a backend is built: from its kind and the config sections the rules pass.

Each kind's module is imported only when that kind is built, so a job imports what it uses
(an API job never imports vLLM's backend, a vLLM job never needs the Batch API's).
"""

from __future__ import annotations

import copy
from pathlib import Path

from .base import Backend, Sampling
from .tokens import ImageTokens

KINDS = ("api", "batch", "vllm")


def build_backend(kind: str, sampling: Sampling, max_pixels: int, *, api: dict | None = None,
                  vllm: dict | None = None, batch: dict | None = None, state_path: str | Path | None = None,
                  image_tokens: ImageTokens | None = None) -> Backend:
    """The backend of ``kind`` asking with ``sampling`` and images of at most ``max_pixels``.

    ``api``: the ``api:`` section (kinds ``api`` and ``batch``); ``vllm``: the ``vllm:``
    section; ``batch``: the ``batch:`` section and ``state_path``, the shard's batch state
    file; ``image_tokens``: the rate limiter's prompt tokens per image (``api``)."""
    if kind == "vllm":
        from .vllm import VllmBackend, VllmSettings

        return VllmBackend(VllmSettings(**vllm), sampling, max_pixels)
    from .api import ApiBackend, ApiSettings

    if kind == "batch":
        from .batch import BatchBackend, BatchSettings

        settings = ApiSettings(**api)
        online = ApiBackend(settings, sampling, max_pixels)
        return BatchBackend(settings, BatchSettings(**batch), sampling, max_pixels, state_path, online)
    if kind == "api":
        return ApiBackend(ApiSettings(**api), sampling, max_pixels, image_tokens)
    raise ValueError(f"unknown backend {kind!r} (known: {', '.join(KINDS)})")


def sibling(backend: Backend, sampling: Sampling) -> Backend:
    """``backend`` asking with ``sampling`` instead, sharing whatever is expensive (vLLM's
    engine, once the first backend has built it)."""
    other = copy.copy(backend)
    other.sampling = sampling
    return other
