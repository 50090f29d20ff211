"""The Batch backend's state file: a cache of the batches a shard knows about, written atomically.

The provider's listing of batches is the record of what was paid; this file only saves
looking it up (and downloading input files) again. Each batch line's ``custom_id`` is a
*line key*, :func:`line_key` of the backend identity, the task id and the task's request
digest, so a batch holds a task exactly when it holds the task's key: a changed prompt or
model is never answered by an old batch, and a batch is matched to tasks whichever shard
submitted it.

A state file that cannot be read is set aside as ``<name>.corrupt`` (and said so, with
its path); the batches it knew are found again in the listing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from ..digests import value_digest

STATE_VERSION = 2
DIGEST_CHARS = 16


def log(message: str, terminal: bool = False) -> None:
    """A line to the job's log; with ``terminal``, to the terminal as well."""
    print(f"batch: {message}", file=sys.stderr, flush=True)
    if terminal and sys.stderr is not sys.__stderr__:
        print(f"vqaflow: batch: {message}", file=sys.__stderr__, flush=True)


def state_digest(value: object) -> str:
    """The short digest the state file records for a task or an identity."""
    return value_digest(value, DIGEST_CHARS)


def line_key(identity: str, task_id: str, digest: str) -> str:
    """A task's ``custom_id`` in batch files: what a batch line must carry to answer it."""
    return state_digest([identity, task_id, digest])


def keys_withheld(entry: dict) -> bool:
    """Whether an entry records a batch found in the listing without its line keys (it holds
    none of its shard's lines): that speaks for its own shard alone."""
    return bool(entry.get("found") and entry.get("lines") and not entry["keys"])


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


def read_entries(path: Path) -> list[dict]:
    """The entries of a state file; raises ValueError when it is not one of this version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"not text: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("batches"), list):
        raise ValueError("not a batch state file")
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"format version {data.get('version')!r}, not {STATE_VERSION}")
    for entry in data["batches"]:
        if not (isinstance(entry, dict) and isinstance(entry.get("keys"), list) and "input_file_id" in entry):
            raise ValueError(f"an entry is not a batch: {json.dumps(entry)[:80]}")
    return data["batches"]


class BatchState:
    """The batches a shard knows about, kept in a JSON file.

    Each entry: ``id`` (None until the batch exists), ``input_file_id``, ``identity``
    (digest of the backend identity), ``keys`` (the line keys the batch holds, in file
    order), ``created`` (epoch seconds), ``abandoned`` (set when its batch or input file is
    gone), ``input_deleted`` (its input file was deleted once its lines were stored); a batch
    found in the listing has ``found`` and ``lines`` (its line count), and its keys only when
    it holds lines of this shard (see :func:`keys_withheld`).
    Entries are appended, never removed, so a task's history of batches (its attempts)
    survives restarts.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: list[dict] = []
        self._index: dict[str, list[dict]] | None = None
        if self.path.exists():
            try:
                self.entries = read_entries(self.path)
            except (OSError, ValueError) as err:
                aside = self.path.with_name(self.path.name + ".corrupt")
                os.replace(self.path, aside)
                log(f"state file {self.path} cannot be read ({err}); set aside as {aside}; "
                    "its batches are found again in the provider's listing", terminal=True)

    def save(self) -> None:
        _write_atomic(self.path, json.dumps({"version": STATE_VERSION, "batches": self.entries}) + "\n")

    def add(self, entry: dict, save: bool = True) -> dict:
        self.entries.append(entry)
        self._index = None
        if save:
            self.save()
        return entry

    def others(self) -> list[dict]:
        """The entries of the other shards' state files in the same folder (after a change
        of ``shard_size`` they hold batches with this shard's lines); one that cannot be
        read is skipped (its own job sets it aside)."""
        found = []
        for path in sorted(self.path.parent.glob("*.json")):
            if path == self.path:
                continue
            try:
                found.extend(read_entries(path))
            except (OSError, ValueError) as err:
                log(f"skipping state file {path}: {err}")
        return found

    def _holders(self) -> dict[str, list[dict]]:
        if self._index is None:
            self._index = {}
            for entry in self.entries:
                for key in entry["keys"]:
                    self._index.setdefault(key, []).append(entry)
        return self._index

    def attempts(self, key: str) -> int:
        """How many recorded batches held this line (its attempts so far)."""
        return len({entry.get("id") or entry["input_file_id"] for entry in self._holders().get(key, ())})

    def latest(self, keys: set[str]) -> dict[str, dict]:
        """Line key -> the newest recorded entry (not abandoned) holding it."""
        latest: dict[str, dict] = {}
        for key in keys:
            live = [e for e in self._holders().get(key, ()) if not e.get("abandoned")]
            if live:
                latest[key] = max(live, key=lambda e: e.get("created") or 0)
        return latest

    def knows(self, batch_id: str, input_file_id: str | None) -> dict | None:
        """The entry of this batch (by id, or by its input file while the id is unrecorded)."""
        for entry in self.entries:
            if entry.get("id") == batch_id or (entry.get("id") is None and entry["input_file_id"] == input_file_id):
                return entry
        return None
