"""Counting records with the standard library only, Parquet from its footer."""

import io
import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage

from vqaflow.inputs.parquet_footer import parquet_num_rows
from vqaflow.inputs.shards import count_records
from vqaflow.inputs.specs import InputError
from workflow_helpers import COLUMNS


def polars_count(path):
    return pl.scan_parquet(path).select(pl.len()).collect().item()


def png(n):
    buffer = io.BytesIO()
    PILImage.new("RGB", (3, 2), (n % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_polars_files_with_row_groups_nested_and_binary_columns(tmp_path):
    n = 2_345
    frame = pl.DataFrame({
        "id": [f"{i:05d}" for i in range(n)],
        "image": [{"bytes": png(i) if i % 3 else None, "path": None if i % 3 else f"{i}.png"} for i in range(n)],
        "conversation": [[{"from": "human", "value": f"<image>\nq{i}"}, {"from": "gpt", "value": "a"}]
                         for i in range(n)],
        "blob": [bytes([i % 256]) * (i % 7) for i in range(n)],
        "score": [float(i) / 3 for i in range(n)],
        "flag": [i % 2 == 0 for i in range(n)],
        "tags": [["a"] * (i % 4) for i in range(n)],
    })
    for options in ({}, {"row_group_size": 100}, {"row_group_size": 1000, "statistics": False},
                    {"compression": "uncompressed", "row_group_size": 7}):
        path = tmp_path / f"polars-{len(options)}-{options.get('row_group_size')}.parquet"
        frame.write_parquet(path, **options)
        assert pq.ParquetFile(path).num_row_groups >= (1 if not options else n // options["row_group_size"])
        assert parquet_num_rows(path) == polars_count(path) == n
        assert count_records(path, COLUMNS) == n


def test_pyarrow_files(tmp_path):
    n = 1_001
    table = pa.table({
        "id": pa.array(range(n), pa.int64()),
        "image": pa.array([{"bytes": png(i), "path": None} for i in range(n)],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "images": pa.array([[{"bytes": None, "path": f"{i}.png"}] * (i % 3) for i in range(n)],
                           pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        "meta": pa.array([{"k": {"v": [i, i + 1]}} for i in range(n)]),
        "m": pa.array([[("a", i)] for i in range(n)], pa.map_(pa.string(), pa.int64())),
        "cat": pa.array(["x", "y"] * (n // 2) + ["x"]).dictionary_encode(),
        "big": pa.array([b"z" * 1000] * n, pa.large_binary()),
    }).replace_schema_metadata({"origin": "test", "huggingface": json.dumps({"info": {}})})
    for version, options in (("2.6", {"row_group_size": 64}), ("1.0", {"row_group_size": 500}),
                             ("2.6", {"data_page_version": "2.0", "write_page_index": True,
                                      "row_group_size": 300})):
        path = tmp_path / f"arrow-{version}-{options['row_group_size']}.parquet"
        pq.write_table(table, path, version=version, **options)
        assert pq.ParquetFile(path).num_row_groups > 1
        assert parquet_num_rows(path) == polars_count(path) == pq.ParquetFile(path).metadata.num_rows == n


def test_many_columns_and_empty_files(tmp_path):
    wide = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": pa.array([i] * 3) for i in range(600)}), wide)
    assert parquet_num_rows(wide) == 3
    empty = tmp_path / "empty.parquet"
    pl.DataFrame({"id": []}, schema={"id": pl.String}).write_parquet(empty)
    assert parquet_num_rows(empty) == polars_count(empty) == 0


def test_hf_style_file(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"image": [png(i) for i in range(250)], "label": list(range(250))})
    ds = ds.cast_column("image", datasets.Image())
    path = tmp_path / "train-00000-of-00001.parquet"
    ds.to_parquet(str(path), batch_size=40)
    assert parquet_num_rows(path) == polars_count(path) == 250
    assert count_records(str(tmp_path / "train-*.parquet"), COLUMNS) == 250


@pytest.mark.parametrize("content, message", [
    (b"", "not a Parquet file (too short)"),
    (b'{"id": 1}\n' * 3, "not a Parquet file (no PAR1 at the end)"),
    (b"PAR1" + b"\x00" * 8 + b"\xff\xff\x00\x00PAR1", "corrupt Parquet footer (metadata length 65535)"),
    (b"PAR1" + b"\x00" * 8 + b"\x03\x00\x00\x00PARE", "encrypted Parquet footers are not supported"),
    (b"PAR1" + b"\x15\x02\x00" + b"\x03\x00\x00\x00PAR1", "corrupt Parquet footer (no row count)"),
])
def test_bad_parquet_footers(tmp_path, content, message):
    path = tmp_path / "in.parquet"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        count_records(path, COLUMNS)
    assert str(err.value) == f"{path}: {message}"
