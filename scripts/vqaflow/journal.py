"""The per-shard journal: every finished request, appended and flushed as it arrives.

A restarted shard job reads the journal and asks only for what is missing. Entries are
keyed by record id and a fingerprint of everything that shapes the answer, so a change of
model, prompt, image or sampling parameters invalidates them. An entry holds an answer
(``answer``, ``generation``) or a permanent failure (``error``, ``kind``); a repair of a
cut-off answer is one more entry with its own fingerprint.

Journals follow records, not shards: when the shard layout changes (``shard_size``, records
added or removed), :func:`relocate` moves every entry to the journal of the shard that now
holds its record, so nothing answered is asked again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

from .jsonl import encode

FSYNC_INTERVAL_S = 1.0
LAYOUT_FILE = "layout.json"
UNPLACED = "unplaced"  # entries of records no longer in the input: kept, never asked again
RELOCATE_BUFFER = 10_000  # entries held per flush while relocating


def read_journal(path: str | Path) -> dict[str, dict[str, dict]]:
    """Entries by record id, then by fingerprint (the last one wins). Unparseable lines
    are skipped: a torn last line after a kill is normal, others are reported on stderr."""
    path = Path(path)
    entries: dict[str, dict[str, dict]] = defaultdict(dict)
    if not path.exists():
        return entries
    lines = path.read_bytes().split(b"\n")
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if lineno < len(lines) - 1:
                print(f"{path}:{lineno}: skipping an unreadable journal line", file=sys.stderr)
            continue
        if isinstance(entry, dict) and "id" in entry and "fp" in entry:
            entries[entry["id"]][entry["fp"]] = entry
    return entries


class JournalWriter:
    """Appends entries as JSON lines; flushes each one, fsyncs at most once a second."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._ensure_line_start()
        self._handle = self.path.open("a", encoding="utf-8")
        self._last_sync = time.monotonic()

    def _ensure_line_start(self) -> None:
        """After a torn write, start the next entry on a fresh line."""
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    with self.path.open("a", encoding="utf-8") as tail:
                        tail.write("\n")

    def append(self, entry: dict) -> None:
        self._handle.write(encode(entry) + "\n")
        self._handle.flush()
        now = time.monotonic()
        if now - self._last_sync >= FSYNC_INTERVAL_S:
            os.fsync(self._handle.fileno())
            self._last_sync = now

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def layout_digest(shard_of: dict[str, str]) -> str:
    """A digest of which record is in which shard."""
    digest = hashlib.sha256()
    for record_id, shard in shard_of.items():
        digest.update(f"{record_id}\0{shard}\n".encode())
    return digest.hexdigest()


def relocate(journal_dir: str | Path, shard_of: dict[str, str]) -> int:
    """Move journal entries to the journal of the shard now holding their record.

    ``shard_of`` maps every record id of the input to its shard name. Does nothing when
    the layout is the one the journals were written for; otherwise rewrites the journal
    directory (into a new directory, swapped in at the end, so a kill leaves the old one
    intact). Returns the number of entries that changed shard.
    """
    journal_dir = Path(journal_dir)
    retired = journal_dir.with_name(journal_dir.name + ".retired")
    if retired.is_dir() and not journal_dir.exists():  # killed between the two renames
        retired.rename(journal_dir)
    layout = layout_digest(shard_of)
    layout_path = journal_dir / LAYOUT_FILE
    journals = sorted(p for p in journal_dir.glob("*.jsonl") if p.is_file()) if journal_dir.is_dir() else []
    if not journals or (layout_path.exists() and layout_path.read_text().strip() == layout):
        journal_dir.mkdir(parents=True, exist_ok=True)
        layout_path.write_text(layout + "\n")
        return 0
    staging = journal_dir.with_name(journal_dir.name + ".relocating")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    buffers: dict[str, list[bytes]] = defaultdict(list)
    held = moved = 0

    def flush() -> None:
        for shard, lines in buffers.items():
            with (staging / f"{shard}.jsonl").open("ab") as out:
                out.writelines(lines)
        buffers.clear()

    try:
        for path in journals:
            with path.open("rb") as handle:
                for raw in handle:
                    try:
                        record_id = json.loads(raw)["id"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn line
                    shard = shard_of.get(record_id, UNPLACED)
                    moved += shard != path.stem
                    buffers[shard].append(raw if raw.endswith(b"\n") else raw + b"\n")
                    held += 1
                    if held >= RELOCATE_BUFFER:
                        flush()
                        held = 0
        flush()
        (staging / LAYOUT_FILE).write_text(layout + "\n")
    except BaseException:  # no staging directory outlives a failed relocation
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(retired, ignore_errors=True)
    journal_dir.rename(retired)
    staging.rename(journal_dir)
    shutil.rmtree(retired)
    return moved
