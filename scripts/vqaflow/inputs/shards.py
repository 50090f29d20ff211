"""Shards: counting the input's records cheaply (to plan them), naming them, finding the
ones that hold given positions, and writing them."""

from __future__ import annotations

from pathlib import Path

from ..columns import Columns
from ..jsonl import encode
from .parquet_footer import parquet_num_rows
from .readers import iter_records, load_json, records_of
from .specs import InputError, image_files, input_files, input_format, input_kind


def count_file(path: Path, keys: Columns) -> int:
    """The records of one input file, counted cheaply (a JSON file is parsed whole)."""
    fmt = input_format(path)
    if fmt == "jsonl":
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    if fmt == "parquet":
        return parquet_num_rows(path)
    return len(records_of(path, load_json(path, path.read_bytes()), keys, notice=False))


def count_records(spec: str | Path, keys: Columns) -> int:
    """Count records cheaply, for planning shards (no validation, standard library only)."""
    if input_kind(spec) == "directory":
        return len(image_files(Path(spec))) or len(input_files(spec))  # none: input_files refuses
    return sum(count_file(path, keys) for path in input_files(spec))


def _shard_name(k: int) -> str:
    """The name (file stem) of the ``k``-th shard."""
    return f"shard-{k:05d}"


def shard_names(n_records: int, shard_size: int) -> list[str]:
    """Names of the shards for ``n_records`` records (at least one shard)."""
    n_shards = max(1, -(-n_records // shard_size))
    return [_shard_name(k) for k in range(n_shards)]


def shards_of(positions: list[int], shard_size: int) -> list[str]:
    """The shards (file stems) holding ``positions``, as the full run splits the input."""
    return sorted({_shard_name(p // shard_size) for p in positions})


def write_shards(
    input_path: str | Path, shard_paths: list[str | Path], shard_size: int, keys: Columns,
    image_root: str | Path = ".",
    files: list[str] | None = None,
) -> dict[str, str]:
    """Split the input into JSONL shards of ``shard_size`` records, in input order.

    Each shard line is ``{"id": ..., "index": ..., "record": {...}}`` (a folder's images by
    their path relative to ``image_root``). Returns the shard (file stem) of every record id,
    in input order. ``files``: a folder input's image paths as planned (the manifest's list),
    so the folder is not listed again. Raises :class:`InputError` before writing anything
    final if the input is malformed or its size no longer matches the planned shards.
    """
    paths = [Path(p) for p in shard_paths]
    tmp_paths = [p.with_suffix(p.suffix + ".tmp") for p in paths]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    shard_of: dict[str, str] = {}
    try:
        handles = [p.open("w", encoding="utf-8") for p in tmp_paths]
        try:
            for index, (record_id, record) in enumerate(iter_records(input_path, keys, image_root, files)):
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
            raise InputError(
                f"{input_path}: {count} records do not fill the {len(paths)} planned shards"
            )
    except BaseException:  # no temporary shard outlives a failed split
        for tmp in tmp_paths:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in zip(tmp_paths, paths):
        tmp.replace(final)
    return shard_of
