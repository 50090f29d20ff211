"""JSON records as a Parquet file with the records' own types.

The column types come from the values themselves, every row read: integers stay
integers (64-bit, unsigned 64-bit past 2**63), lists stay lists of their items' type,
objects become structs of the keys their rows hold (a row without a key reads it as
null, which is how Parquet stores an optional field). Where the rows of one field
disagree and Parquet has no type for both (an integer in one row and text in another, a
list and a string), the field is written as text — strings as they are, other values as
JSON — and the run says which field and why; so it does when integers and fractions
share a field (written as floating point) and for an object with no keys at all (written
as null). Rows are written in row groups, so memory stays bounded.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .jsonl import read_jsonl

INT64 = (-(2**63), 2**63 - 1)
NULL, BOOL, FLOAT, TEXT, JSON = ("null",), ("bool",), ("float",), ("str",), ("json",)
_NAMES = {"null": "null", "bool": "booleans", "int": "integers", "float": "fractions", "str": "text",
          "list": "lists", "struct": "objects", "json": "mixed values"}


def _kind(value, notes: dict, path: str = "") -> tuple:
    """The type of one value; conflicts inside it are noted under their path."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return ("int", value, value)
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return TEXT
    if isinstance(value, list):
        item = NULL
        for element in value:
            item = _unify(item, _kind(element, notes, f"{path}[]"), notes, f"{path}[]")
        return ("list", item)
    return ("struct", {key: _kind(item, notes, _join(path, key)) for key, item in value.items()})


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unify(a: tuple, b: tuple, notes: dict, path: str = "") -> tuple:
    """The one type holding both; conflicts are noted under the field's path."""
    if a[0] == "null" or a == b:
        return b
    if b[0] == "null":
        return a
    if a[0] == b[0] == "int":
        return ("int", min(a[1], b[1]), max(a[2], b[2]))
    if a[0] == b[0] == "list":
        return ("list", _unify(a[1], b[1], notes, f"{path}[]"))
    if a[0] == b[0] == "struct":
        merged = dict(a[1])
        for key, kind in b[1].items():
            merged[key] = _unify(merged.get(key, NULL), kind, notes, _join(path, key))
        return ("struct", merged)
    if {a[0], b[0]} == {"int", "float"}:
        _note(notes, path, "holds integers and fractions: written as floating point numbers")
        return FLOAT
    if "json" not in (a[0], b[0]):
        _note(notes, path, f"holds {_NAMES[a[0]]} in some rows and {_NAMES[b[0]]} in others, and a Parquet "
                           "column has one type: written as text (JSON for what is not a string)")
    return JSON


def _note(notes: dict, path: str, why: str) -> None:
    notes.setdefault(path or "(the row)", why)


def _arrow(kind: tuple, path: str, notes: dict) -> pa.DataType:
    name = kind[0]
    if name == "int":
        if INT64[0] <= kind[1] and kind[2] <= INT64[1]:
            return pa.int64()
        if kind[1] >= 0 and kind[2] < 2**64:
            return pa.uint64()
        _note(notes, path, "holds integers beyond 64 bits: written as text")
        return pa.string()
    if name == "list":
        return pa.list_(_arrow(kind[1], f"{path}[]", notes))
    if name == "struct":
        if not kind[1]:
            _note(notes, path, "holds only objects without keys, which Parquet cannot store: written as null")
            return pa.null()
        return pa.struct([pa.field(key, _arrow(item, _join(path, key), notes)) for key, item in kind[1].items()])
    return {"null": pa.null(), "bool": pa.bool_(), "float": pa.float64(), "str": pa.string(),
            "json": pa.string()}[name]


def _fit(value, kind: pa.DataType):
    """``value`` in the shape the column type takes."""
    if value is None or pa.types.is_null(kind):
        return None
    if pa.types.is_string(kind):
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if pa.types.is_floating(kind):
        return float(value)
    if pa.types.is_list(kind):
        return [_fit(item, kind.value_type) for item in value]
    if pa.types.is_struct(kind):
        return {field.name: _fit(value.get(field.name), field.type) for field in kind}
    return value


def _row_groups(path: Path, size: int) -> Iterator[list[dict]]:
    rows: list[dict] = []
    for row in read_jsonl(path):
        rows.append(row)
        if len(rows) >= size:
            yield rows
            rows = []
    if rows:
        yield rows


def write_parquet(jsonl: Path, target: Path, row_group: int) -> list[str]:
    """Write the JSON objects of ``jsonl`` to ``target``; returns (and says on stderr)
    what could not keep its type, field by field."""
    notes: dict[str, str] = {}
    row = ("struct", {})
    for record in read_jsonl(jsonl):
        row = _unify(row, _kind(record, notes), notes)
    schema = pa.schema([pa.field(key, _arrow(kind, key, notes)) for key, kind in row[1].items()])
    with pq.ParquetWriter(target, schema) as writer:
        for rows in _row_groups(jsonl, row_group):
            fitted = [{field.name: _fit(record.get(field.name), field.type) for field in schema} for record in rows]
            writer.write_table(pa.Table.from_pylist(fitted, schema=schema))
    said = [f"{target.name}: field {path!r} {why}" for path, why in notes.items()]
    for line in said:
        print(f"warning: {line}", file=sys.stderr)
        if sys.stderr is not sys.__stderr__:
            print(f"vqaflow: warning: {line}", file=sys.__stderr__)
    return said
