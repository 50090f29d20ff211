"""JSON Lines, as the workflow reads and writes them (UTF-8, one object a line)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

# one encoder for every line, not one per call; NaN is refused: it is not JSON
encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Yield the objects of a JSONL file the workflow wrote itself."""
    with Path(path).open("rb") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write ``rows`` to ``path`` (replacing it); returns how many were written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(encode(row))
            out.write("\n")
            count += 1
    return count
