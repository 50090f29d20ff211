"""The per-shard journal: every finished answer, appended and flushed as it arrives.

A restarted shard job reads the journal and asks only for what is missing. Entries
are keyed by record id and a fingerprint of everything that shapes the answer, so a
change of model, prompt, image or sampling parameters invalidates them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

FSYNC_INTERVAL_S = 1.0


def read_journal(path: str | Path) -> dict[str, dict]:
    """Entries by record id (the last one wins). Unparseable lines are skipped:
    a torn last line after a kill is normal, others are reported on stderr."""
    path = Path(path)
    if not path.exists():
        return {}
    entries: dict[str, dict] = {}
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
            entries[entry["id"]] = entry
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
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
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

    def __enter__(self) -> "JournalWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
