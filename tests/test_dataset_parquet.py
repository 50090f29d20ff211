"""The Parquet dataset written block by block (bounded memory): the same table as Polars
reading every record at once, one row group per block."""

from __future__ import annotations

import json

import polars as pl
import pyarrow.parquet as pq

from vqaflow import dataset
from vqaflow.dataset import write_records_as


def records() -> list[dict]:
    """Fields that appear late, change type (int then string, int then float), nest, or are
    null in whole blocks: the schema must come from every record, not the first block."""
    rows = []
    for i in range(10):
        row = {"id": i if i < 6 else f"r{i}", "score": i if i < 3 else i / 2, "image": [f"{i}.png"] * (i % 3),
               "meta": None if i < 5 else {"k": i}, "qas": [{"question": "q?", "answer": "a", "flags": []}]}
        if i == 9:
            row["meta"] = {"other": "z"}
            row["late"] = {"x": [1.5]}
        rows.append(row)
    return rows


def test_blocks_give_the_table_of_all_records(tmp_path):
    source = tmp_path / "merged.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in records()) + "\n")
    expected = pl.read_ndjson(source, infer_schema_length=None)
    dataset_path = tmp_path / "dataset.parquet"
    dataset._write_parquet(source, dataset_path, rows=4)
    written = pl.read_parquet(dataset_path)
    assert written.schema == expected.schema and written.equals(expected)
    assert written["meta"].to_list()[-1] == {"k": None, "other": "z"}
    assert pq.ParquetFile(dataset_path).num_row_groups == 3, "one row group per block of 4 records"


def test_the_workflow_entry_point_and_an_empty_dataset(tmp_path):
    source = tmp_path / "merged.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in records()))
    write_records_as(source, tmp_path / "dataset.parquet", "parquet")
    assert not source.exists() and pl.read_parquet(tmp_path / "dataset.parquet").height == 10
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    write_records_as(empty, tmp_path / "empty.parquet", "parquet")
    assert pl.read_parquet(tmp_path / "empty.parquet").height == 0
