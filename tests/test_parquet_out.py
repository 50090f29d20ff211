"""The Parquet dataset keeps the records' own types, and names any field whose rows disagree."""

from __future__ import annotations

import json

import polars as pl

from vqaflow.stages.merge import write_records_as


def written(tmp_path, rows: list[dict], capsys) -> tuple[pl.DataFrame, str]:
    source = tmp_path / "records.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    write_records_as(source, tmp_path / "dataset.parquet", "parquet")
    assert not source.exists()
    return pl.read_parquet(tmp_path / "dataset.parquet"), capsys.readouterr().err


def test_integers_lists_and_structs_keep_their_types(tmp_path, capsys):
    rows = [{"id": n, "tags": ["a", "b"][:n], "meta": {"source": "cam", "score": n / 2}, "big": 2**63 + n}
            for n in range(3)]
    table, said = written(tmp_path, rows, capsys)
    assert table.schema["id"] == pl.Int64 and table.schema["big"] == pl.UInt64
    assert table.schema["tags"] == pl.List(pl.String)
    assert table.schema["meta"] == pl.Struct({"source": pl.String, "score": pl.Float64})
    assert table.to_dicts()[2] == rows[2] and said == ""


def test_fields_whose_rows_disagree_are_named(tmp_path, capsys):
    rows = [{"id": 1, "tags": ["a"], "x": 1, "meta": {}}, {"id": "row-1", "tags": "a", "x": 1.5, "meta": {}}]
    table, said = written(tmp_path, rows, capsys)
    assert table["id"].to_list() == ["1", "row-1"] and table["tags"].to_list() == ['["a"]', "a"]
    assert table["x"].to_list() == [1.0, 1.5] and table["meta"].to_list() == [None, None]
    for field in ("'id' holds integers in some rows and text", "'tags' holds lists", "'x' holds integers and fractions",
                  "'meta' holds only objects without keys"):
        assert field in said


def test_no_records_is_an_empty_file(tmp_path, capsys):
    table, _ = written(tmp_path, [], capsys)
    assert table.height == 0
