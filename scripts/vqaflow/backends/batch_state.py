"""The Batch backend's state file: the batches a shard has submitted, written atomically.

A task's line is found again by its digest (:func:`state_digest` of its prompt, images,
seed and image size) under the digest of the backend identity, so a changed prompt or
model is never answered by an old batch.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..digests import value_digest

STATE_VERSION = 1
DIGEST_CHARS = 16


def state_digest(value: object) -> str:
    """The short digest the state file records for a task or an identity."""
    return value_digest(value, DIGEST_CHARS)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class BatchState:
    """The batches a shard has submitted, kept in a JSON file.

    Each entry: ``id`` (None until the batch exists), ``input_file_id``, ``identity``
    (digest of the backend identity), ``tasks`` (task id -> digest of its request),
    ``created`` (epoch seconds), ``abandoned`` (set when its batch or input file is
    gone). Entries are appended, never removed, so a task's history of batches (its
    attempts) survives restarts.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: list[dict] = []
        if self.path.exists():
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            self.entries = data.get("batches", [])

    def save(self) -> None:
        _write_atomic(self.path, json.dumps({"version": STATE_VERSION, "batches": self.entries}) + "\n")

    def add(self, entry: dict) -> dict:
        self.entries.append(entry)
        self.save()
        return entry

    def attempts(self, identity: str, task_id: str, digest: str) -> int:
        """How many recorded batches held this task (its attempts so far)."""
        return sum(1 for e in self.entries if e.get("identity") == identity and e["tasks"].get(task_id) == digest)

    def latest(self, identity: str, digests: dict[str, str]) -> dict[str, dict]:
        """Task id -> the last batch entry (not abandoned) that holds the task's line."""
        latest: dict[str, dict] = {}
        for entry in self.entries:
            if entry.get("identity") != identity or entry.get("abandoned"):
                continue
            for task_id, digest in entry["tasks"].items():
                if digests.get(task_id) == digest:
                    latest[task_id] = entry
        return latest
