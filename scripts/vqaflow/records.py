"""Reading, validating and sharding input records.

Records are read with the standard ``json`` module (never pandas), so every value keeps
its type: ``"007"`` stays the string ``"007"``. Every problem is reported with the file
and the line (JSONL) or position (JSON array, Parquet) it comes from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .columns import Columns
from .jsonl import encode

SHARD_FORMATS = (".json", ".jsonl", ".parquet")


class InputError(ValueError):
    """The input file cannot be used; the message names the file and the place."""


def input_format(path: str | Path) -> str:
    """The format of an input file by its extension: json, jsonl or parquet."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(
        f"{path}: unsupported input format {suffix!r} (use .json, .jsonl or .parquet)"
    )


def _iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise InputError(f"{path}:{lineno}: invalid JSON: {err}") from None


def _iter_json_array(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: invalid JSON: {err}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    for position, item in enumerate(data):
        yield f"{path}: record {position}", item


PARQUET_BATCH = 10_000  # rows read at a time from a Parquet input


def _iter_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import polars as pl

    try:
        scan = pl.scan_parquet(path)
        rows = scan.select(pl.len()).collect().item()
    except Exception as err:  # polars raises several kinds for a bad file
        raise InputError(f"{path}: cannot read Parquet: {err}") from None
    for offset in range(0, rows, PARQUET_BATCH):
        batch = scan.slice(offset, PARQUET_BATCH).collect()
        for position, row in enumerate(batch.iter_rows(named=True), offset):
            yield f"{path}: row {position}", json.loads(json.dumps(row, default=str))


def _check_record(where: str, record: Any, keys: Columns) -> None:
    if not isinstance(record, dict):
        raise InputError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    image = record.get(keys.image)
    if image is not None and not isinstance(image, str):
        if not isinstance(image, list) or not all(isinstance(i, str) for i in image):
            raise InputError(f"{where}: {keys.image!r} must be a path or a list of paths")
    conversation = record.get(keys.conversation)
    if conversation is not None:
        if not isinstance(conversation, list) or not all(
            isinstance(turn, dict) for turn in conversation
        ):
            raise InputError(f"{where}: {keys.conversation!r} must be a list of turns")


def iter_records(path: str | Path, keys: Columns) -> Iterator[tuple[str, dict]]:
    """Yield ``(record_id, record)`` in input order, validating as it goes.

    Records without an id get ``row-<position>``. Duplicate ids, records that are not
    objects, malformed JSON and empty files raise :class:`InputError`.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: input file does not exist")
    readers = {"jsonl": _iter_jsonl, "json": _iter_json_array, "parquet": _iter_parquet}
    seen: dict[str, str] = {}
    for position, (where, record) in enumerate(readers[input_format(path)](path)):
        _check_record(where, record, keys)
        raw_id = record.get(keys.id)
        record_id = f"row-{position}" if raw_id is None else str(raw_id)
        if record_id in seen:
            raise InputError(
                f"{where}: duplicate id {record_id!r} (first seen at {seen[record_id]})"
            )
        seen[record_id] = where
        yield record_id, record
    if not seen:
        raise InputError(f"{path}: the input holds no records")


def count_records(path: str | Path) -> int:
    """Count records cheaply, for planning shards (no validation)."""
    path = Path(path)
    fmt = input_format(path)
    if fmt == "jsonl":
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    if fmt == "parquet":
        import polars as pl

        return pl.scan_parquet(path).select(pl.len()).collect().item()
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: invalid JSON: {err}") from None
    return 1 if isinstance(data, dict) else len(data) if isinstance(data, list) else 0


def shard_names(n_records: int, shard_size: int) -> list[str]:
    """Names of the shards for ``n_records`` records (at least one shard)."""
    n_shards = max(1, -(-n_records // shard_size))
    return [f"shard-{k:05d}" for k in range(n_shards)]


def write_shards(
    input_path: str | Path, shard_paths: list[str | Path], shard_size: int, keys: Columns
) -> dict[str, str]:
    """Split the input into JSONL shards of ``shard_size`` records, in input order.

    Each shard line is ``{"id": ..., "index": ..., "record": {...}}``. Returns the shard
    (file stem) of every record id, in input order. Raises :class:`InputError` before writing anything final if
    the input is malformed or its size no longer matches the planned shards.
    """
    paths = [Path(p) for p in shard_paths]
    tmp_paths = [p.with_suffix(p.suffix + ".tmp") for p in paths]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    handles = [p.open("w", encoding="utf-8") for p in tmp_paths]
    shard_of: dict[str, str] = {}
    try:
        for index, (record_id, record) in enumerate(iter_records(input_path, keys)):
            shard = index // shard_size
            if shard >= len(handles):
                raise InputError(
                    f"{input_path}: more records than planned ({len(paths)} shards of "
                    f"{shard_size}); the file changed during planning"
                )
            line = {"id": record_id, "index": index, "record": record}
            handles[shard].write(encode(line) + "\n")
            shard_of[record_id] = paths[shard].stem
    finally:
        for handle in handles:
            handle.close()
    count = len(shard_of)
    if count <= (len(paths) - 1) * shard_size:
        for tmp in tmp_paths:
            tmp.unlink(missing_ok=True)
        raise InputError(
            f"{input_path}: {count} records do not fill the {len(paths)} planned shards"
        )
    for tmp, final in zip(tmp_paths, paths):
        tmp.replace(final)
    return shard_of
