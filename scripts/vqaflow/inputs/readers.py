"""The records of an input spec, in input order: JSON Lines, JSON arrays, Parquet files
and directories of images, each record validated and given its id.

Records are read with the standard ``json`` module (never pandas), so every value keeps
its type: ``"007"`` stays the string ``"007"``. Every problem is reported with the file
and the line (JSONL) or position (JSON array, Parquet) it comes from. Polars is imported
only to read Parquet rows.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from ..columns import Columns
from .image_refs import bytes_data_url
from .specs import InputError, image_files, input_files, input_format, input_kind, no_images_error
from .validate import check_record


class _NonFinite:
    """Counts NaN/Infinity in one file and warns once, naming the first place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.first: str | None = None

    def note(self, where: str, n: int = 1) -> None:
        if self.first is None:
            self.first = where
        self.count += n

    def warn(self) -> None:
        if self.count:
            print(
                f"warning: {self.path}: {self.count} NaN/Infinity value(s) written as null "
                f"(first at {self.first})",
                file=sys.stderr,
            )


_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _surrogate_error(where: str) -> InputError:
    return InputError(
        f"{where}: a string holds a lone surrogate escape (such as \\ud800), which is not "
        "text; fix or drop it"
    )


def _iter_jsonl(path: Path, keys: Columns) -> Iterator[tuple[str, Any]]:
    nonfinite = _NonFinite(path)
    where = ""

    def constant(name: str) -> None:
        nonfinite.note(where)

    decode = json.JSONDecoder(parse_constant=constant).decode
    hint = _SURROGATE_HINT.search
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[3:]
            where = f"{path}:{lineno}"
            try:
                record = decode(raw.decode("utf-8"))
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: invalid JSON: {err}") from None
            except UnicodeDecodeError as err:
                raise InputError(f"{where}: not UTF-8 text: {err}") from None
            if hint(raw) and _has_lone_surrogate(record):
                raise _surrogate_error(where)
            yield where, record
    nonfinite.warn()


_NON_FINITE = object()


def _replace_non_finite(value: Any) -> tuple[Any, int]:
    """The value with the NaN marker replaced by None, and how many were replaced."""
    if value is _NON_FINITE:
        return None, 1
    if isinstance(value, float) and not math.isfinite(value):
        return None, 1
    if isinstance(value, dict):
        total = 0
        for key, item in value.items():
            new, n = _replace_non_finite(item)
            if n:
                value[key] = new
                total += n
        return value, total
    if isinstance(value, list):
        total = 0
        for index, item in enumerate(value):
            new, n = _replace_non_finite(item)
            if n:
                value[index] = new
                total += n
        return value, total
    return value, 0


def records_of(path: Path, data: Any, keys: Columns, notice: bool) -> list:
    """The records of a parsed JSON file: the array, or the one list of objects inside a
    wrapping object (``{"data": [...]}``)."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    names = ", ".join(repr(k) for k in list(data)[:20]) + (", ..." if len(data) > 20 else "")
    lists = [
        key for key, value in data.items()
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value)
    ]
    if keys.image in data or keys.conversation in data:
        raise InputError(
            f"{path}: expected a JSON array of records, got a single object with keys {names}; "
            "wrap it in [ ] if it is one record"
        )
    if len(lists) != 1:
        holding = f"several lists of objects ({', '.join(map(repr, lists))})" if lists else "no list of objects"
        raise InputError(
            f"{path}: expected a JSON array of records, got an object with keys {names} "
            f"holding {holding}"
        )
    records = data[lists[0]]
    if notice:
        print(
            f"note: {path}: a JSON object, not an array; reading the {len(records)} records "
            f"under its key {lists[0]!r}",
            file=sys.stderr,
        )
    return records


def load_json(path: Path, raw: bytes, parse_constant=None) -> Any:
    """The parsed content of a JSON file's bytes; :class:`InputError` when it is not
    UTF-8 or not JSON."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text: {err}") from None
    try:
        return json.JSONDecoder(parse_constant=parse_constant).decode(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: invalid JSON: {err}") from None


def _iter_json_array(path: Path, keys: Columns) -> Iterator[tuple[str, Any]]:
    nonfinite = _NonFinite(path)
    found = 0

    def constant(name: str) -> object:
        nonlocal found
        found += 1
        return _NON_FINITE

    raw = path.read_bytes()
    data = load_json(path, raw, constant)
    records = records_of(path, data, keys, notice=True)
    lone = _SURROGATE_HINT.search(raw) is not None
    del raw, data
    for position, item in enumerate(records):
        where = f"{path}: record {position}"
        if found:
            item, n = _replace_non_finite(item)
            if n:
                nonfinite.note(where, n)
        if lone and _has_lone_surrogate(item):
            raise _surrogate_error(where)
        yield where, item
    nonfinite.warn()


PARQUET_BATCH = 10_000  # rows read at a time from a Parquet input


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes_data_url(bytes(value))
    return str(value)  # dates, times, decimals


def _iter_parquet(path: Path, keys: Columns) -> Iterator[tuple[str, Any]]:
    import polars as pl

    try:
        scan = pl.scan_parquet(path)
        rows = scan.select(pl.len()).collect().item()
    except Exception as err:  # polars raises several kinds for a bad file
        raise InputError(f"{path}: cannot read Parquet: {err}") from None
    nonfinite = _NonFinite(path)
    dumps, loads = json.dumps, json.loads
    for offset in range(0, rows, PARQUET_BATCH):
        batch = scan.slice(offset, PARQUET_BATCH).collect()
        for position, row in enumerate(batch.iter_rows(named=True), offset):
            try:
                record = loads(dumps(row, default=_json_default, allow_nan=False))
            except ValueError:  # NaN or infinite floats
                row, n = _replace_non_finite(row)
                nonfinite.note(f"{path}: row {position}", n)
                record = loads(dumps(row, default=_json_default, allow_nan=False))
            yield f"{path}: row {position}", record
    nonfinite.warn()


def folder_image_path(folder: str | Path, rel: str, image_root: str | Path) -> str:
    """The dataset's path of ``rel`` (a POSIX path inside ``folder``): relative to
    ``image_root`` (``../`` when the folder is outside it), so a dataset moved with its
    images keeps them; absolute only when the folder was given as an absolute path
    outside ``image_root``."""
    image = os.path.join(os.path.abspath(folder), *rel.split("/"))
    try:
        relative = os.path.relpath(image, os.path.abspath(image_root))
    except ValueError:  # another drive (Windows)
        return image
    if relative.split(os.sep)[0] == os.pardir and os.path.isabs(folder):
        return image
    return PurePath(relative).as_posix()


def _iter_directory(root: Path, keys: Columns, files: list[str], image_root: str | Path) -> Iterator[tuple[str, Any]]:
    for rel in files:
        yield str(root / rel), {keys.id: rel, keys.image: folder_image_path(root, rel, image_root)}


_READERS = {"jsonl": _iter_jsonl, "json": _iter_json_array, "parquet": _iter_parquet}


def _iter_raw(spec: str | Path, keys: Columns, image_root: str | Path,
              files: list[str] | None) -> Iterator[tuple[str, Any]]:
    if input_kind(spec) == "directory":
        files = image_files(Path(spec)) if files is None else files
        if not files:
            raise no_images_error(spec)
        yield from _iter_directory(Path(spec), keys, files, image_root)
        return
    for path in input_files(spec):
        yield from _READERS[input_format(path)](path, keys)


def iter_records(spec: str | Path, keys: Columns, image_root: str | Path = ".",
                 files: list[str] | None = None) -> Iterator[tuple[str, dict]]:
    """Yield ``(record_id, record)`` in input order, validating as it goes.

    ``spec`` is a file, a glob of files or a directory of images (see :func:`input_files`);
    a directory's images get their path relative to ``image_root`` (:func:`folder_image_path`);
    ``files``: the directory's image paths when already listed (relative, sorted).
    Records without an id (or with ``id: null``, which is removed) get ``row-<position>``,
    the position counting across all files of the input. Duplicate ids, records that are
    not objects, malformed JSON, lone surrogates and an empty input raise
    :class:`InputError`; NaN/Infinity become null with one warning per file.
    """
    seen: dict[str, str] = {}
    for position, (where, record) in enumerate(_iter_raw(spec, keys, image_root, files)):
        check_record(where, record, keys)
        raw_id = record.get(keys.id)
        record_id = f"row-{position}" if raw_id is None else str(raw_id)
        if record_id in seen:
            raise InputError(
                f"{where}: duplicate id {record_id!r} (first seen at {seen[record_id]})"
            )
        seen[record_id] = where
        yield record_id, record
    if not seen:
        raise InputError(f"{spec}: the input holds no records")
