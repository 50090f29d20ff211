"""Identical requests across the whole run (``dedup.requests``), found before any request.

Two steps, as image dedup's: each shard's *request keys* (one job per shard, since building
a request reads and digests its images), then one small job matching the keys of all shards in
input order. A record's key is its request's content (:func:`~vqaflow.requests.content_key`:
system prompt, turns and image bytes; settings are the same for the whole run), so two records
with the same key make the same request, whatever shard they are in. Every record whose key
an earlier record has is a *copy* of the first one (its *original*): ``request_duplicates.jsonl``
lists it as ``{"id", "index", "shard", "duplicate_of"}``. Generation skips the copies; the
finish stage (:mod:`.finish`) fills them in from their originals, so each request is asked
and paid for once. Records left out by image dedup are neither originals nor copies; records
whose request cannot be built (a bad image) have no key and fail on their own in generation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..jsonl import read_jsonl
from ..prompts import PromptSettings
from ..requests import content_key
from .generate import PREPARE_THREADS, prepare


def _key(line: dict, settings: PromptSettings) -> str | None:
    try:
        task, digests = prepare(line, settings)
    except Exception:  # noqa: BLE001 - generation reports it, for this record alone
        return None
    return content_key(task.prompt, digests)


def request_keys(shard_path: str | Path, settings: PromptSettings) -> Iterator[dict]:
    """``{"id", "index", "shard", "key"}`` for each record of a shard, in shard order
    (``key`` is None when the record's request cannot be built)."""
    shard = Path(shard_path).stem
    lines = list(read_jsonl(shard_path))
    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
        keys = list(pool.map(lambda line: _key(line, settings), lines))
    for line, key in zip(lines, keys):
        yield {"id": line["id"], "index": line["index"], "shard": shard, "key": key}


def match_requests(key_lines: Iterable[dict], skip: frozenset[str] = frozenset()) -> Iterator[dict]:
    """The copies among request-key lines given in input order: every record whose key an
    earlier record has, as ``{"id", "index", "shard", "duplicate_of"}`` naming the first.
    Records in ``skip`` (left out by image dedup) take no part."""
    first: dict[str, str] = {}
    for line in key_lines:
        if line["key"] is None or line["id"] in skip:
            continue
        original = first.setdefault(line["key"], line["id"])
        if original != line["id"]:
            yield {"id": line["id"], "index": line["index"], "shard": line["shard"], "duplicate_of": original}
