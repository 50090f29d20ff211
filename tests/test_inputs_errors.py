"""Input errors and oddities, each named with the file and the line or row."""

import json
from dataclasses import asdict

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vqaflow.inputs.readers import iter_records
from vqaflow.inputs.shards import count_records, write_shards
from vqaflow.inputs.specs import InputError
from vqaflow.jsonl import read_jsonl
from vqaflow.pipelines import PIPELINES
from vqaflow.quality.filters import FilterSettings
from vqaflow.stages.refine import refine_record
from workflow_helpers import COLUMNS

# --- a JSON object instead of an array


def test_wrapped_records_are_used_with_a_notice(tmp_path, capsys):
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"version": "1.0", "info": {"n": 2}, "tags": ["a", "b"],
                                "data": [{"id": "x", "image": "a.png"}, {"id": "y"}]}))
    assert count_records(path, COLUMNS) == 2
    assert capsys.readouterr().err == ""  # counting is quiet; reading says it once
    assert [rid for rid, _ in iter_records(path, COLUMNS)] == ["x", "y"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{path}: a JSON object, not an array; reading the 2 records under its key 'data'" in err


@pytest.mark.parametrize("content, message", [
    ({"train": [{"id": 1}], "test": [{"id": 2}]},
     "got an object with keys 'train', 'test' holding several lists of objects ('train', 'test')"),
    ({"name": "x", "count": 3, "ids": [1, 2]},
     "got an object with keys 'name', 'count', 'ids' holding no list of objects"),
    ({"records": []}, "got an object with keys 'records' holding no list of objects"),
    ({"id": 1, "image": "a.png", "conversation": [{"from": "human", "value": "hi"}]},
     "got a single object with keys 'id', 'image', 'conversation'; wrap it in [ ] if it is one record"),
])
def test_other_objects_are_refused_naming_their_keys(tmp_path, content, message):
    path = tmp_path / "in.json"
    path.write_text(json.dumps(content))
    for call in (lambda: count_records(path, COLUMNS), lambda: list(iter_records(path, COLUMNS))):
        with pytest.raises(InputError) as err:
            call()
        assert str(err.value) == f"{path}: expected a JSON array of records, {message}"


def test_a_json_scalar_is_refused(tmp_path):
    path = tmp_path / "in.json"
    path.write_text("3")
    with pytest.raises(InputError, match="in.json: expected a JSON array of records, got int"):
        list(iter_records(path, COLUMNS))


# --- NaN and Infinity


def test_nan_in_jsonl_becomes_null_with_one_warning(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "score": 0.5}\n'
                    '{"id": 2, "score": NaN, "extra": [Infinity, -Infinity]}\n'
                    '{"id": 3, "score": NaN}\n')
    records = [record for _, record in iter_records(path, COLUMNS)]
    assert records[1] == {"id": 2, "score": None, "extra": [None, None]}
    assert records[2] == {"id": 3, "score": None}
    err = capsys.readouterr().err
    assert err == f"warning: {path}: 4 NaN/Infinity value(s) written as null (first at {path}:2)\n"


def test_nan_in_json_array_becomes_null(tmp_path, capsys):
    path = tmp_path / "in.json"
    path.write_text('[{"id": 1}, {"id": 2, "a": {"b": [1, NaN]}}, {"id": 3, "c": Infinity}]')
    records = [record for _, record in iter_records(path, COLUMNS)]
    assert records == [{"id": 1}, {"id": 2, "a": {"b": [1, None]}}, {"id": 3, "c": None}]
    assert capsys.readouterr().err == (
        f"warning: {path}: 2 NaN/Infinity value(s) written as null (first at {path}: record 1)\n")


def test_nan_in_parquet_becomes_null(tmp_path, capsys):
    path = tmp_path / "in.parquet"
    pl.DataFrame({"id": ["a", "b", "c"], "score": [1.0, float("nan"), float("inf")],
                  "v": [[1.0], [2.0], [float("nan")]]}).write_parquet(path)
    records = [record for _, record in iter_records(path, COLUMNS)]
    assert [r["score"] for r in records] == [1.0, None, None]
    assert [r["v"] for r in records] == [[1.0], [2.0], [None]]
    assert capsys.readouterr().err == (
        f"warning: {path}: 3 NaN/Infinity value(s) written as null (first at {path}: row 1)\n")


def test_nan_in_shards_is_null(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "score": NaN}\n')
    write_shards(path, [tmp_path / "s.jsonl"], 5, COLUMNS)
    assert (tmp_path / "s.jsonl").read_text() == '{"id": "1", "index": 0, "record": {"id": 1, "score": null}}\n'


def test_nan_as_a_string_is_kept(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "NaN", "note": "Infinity"}\n')
    assert list(iter_records(path, COLUMNS)) == [("NaN", {"id": "NaN", "note": "Infinity"})]
    assert capsys.readouterr().err == ""


# --- lone surrogates


def test_lone_surrogate_in_jsonl_is_refused_with_the_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "t": "\\ud83d\\ude00 fine"}\n{"id": 2, "t": "bad \\ud800 here"}\n')
    with pytest.raises(InputError, match=r"in.jsonl:2: a string holds a lone surrogate escape"):
        list(iter_records(path, COLUMNS))
    with pytest.raises(InputError, match=r"in.jsonl:2: a string holds a lone surrogate"):
        write_shards(path, [tmp_path / "s.jsonl"], 5, COLUMNS)
    assert not (tmp_path / "s.jsonl").exists()


def test_lone_surrogate_in_a_key_or_json_array(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('[{"id": 1}, {"id": 2, "\\udc00": 1}]')
    with pytest.raises(InputError, match=r"in.json: record 1: a string holds a lone surrogate"):
        list(iter_records(path, COLUMNS))


def test_surrogate_pairs_and_escaped_backslashes_are_fine(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "t": "\\ud83d\\ude00"}\n{"id": 2, "t": "\\\\ud800"}\n')
    assert [r["t"] for _, r in iter_records(path, COLUMNS)] == ["\N{GRINNING FACE}", "\\ud800"]
    write_shards(path, [tmp_path / "s.jsonl"], 5, COLUMNS)
    assert [line["record"]["t"] for line in read_jsonl(tmp_path / "s.jsonl")] == ["\N{GRINNING FACE}", "\\ud800"]


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": "\xed\xa0\x80"}\n')  # an encoded surrogate is not UTF-8
    with pytest.raises(InputError, match=r"in.jsonl:2: not UTF-8 text"):
        list(iter_records(path, COLUMNS))


def test_utf8_bom_is_accepted(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b'\xef\xbb\xbf{"id": 1}\n')
    (tmp_path / "in.json").write_bytes(b'\xef\xbb\xbf[{"id": 1}]')
    assert [rid for rid, _ in iter_records(tmp_path / "in.jsonl", COLUMNS)] == ["1"]
    assert [rid for rid, _ in iter_records(tmp_path / "in.json", COLUMNS)] == ["1"]


# --- ids


def test_null_id_is_a_missing_id(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": null, "image": "a.png"}\n{"image": "b.png"}\n{"id": "row-5"}\n')
    records = list(iter_records(path, COLUMNS))
    assert records == [("row-0", {"image": "a.png"}), ("row-1", {"image": "b.png"}), ("row-5", {"id": "row-5"})]
    write_shards(path, [tmp_path / "s.jsonl"], 5, COLUMNS)
    lines = list(read_jsonl(tmp_path / "s.jsonl"))
    parsed = asdict(PIPELINES["image_qa"].parse("", "stop"))
    line = {**lines[0], "answer": "", "generation": {"finish_reason": "stop"}, "parsed": parsed}
    assert refine_record(line, PIPELINES["image_qa"], COLUMNS, FilterSettings(8, None))["id"] == "row-0"


def test_null_ids_in_parquet(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": pa.array([7, None, 9], pa.int64()), "x": [1, 2, 3]}), path)
    records = list(iter_records(path, COLUMNS))
    assert records == [("7", {"id": 7, "x": 1}), ("row-1", {"x": 2}), ("9", {"id": 9, "x": 3})]


def test_integer_ids_keep_their_type(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 42}\n{"id": "007"}\n{"id": 1.5}\n')
    write_shards(path, [tmp_path / "s.jsonl"], 5, COLUMNS)
    lines = list(read_jsonl(tmp_path / "s.jsonl"))
    assert [(line["id"], line["record"]["id"]) for line in lines] == [("42", 42), ("007", "007"), ("1.5", 1.5)]


def test_duplicate_of_integer_and_string_id_is_named(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 42}\n{"id": "42"}\n')
    with pytest.raises(InputError, match=r"in.jsonl:2: duplicate id '42' \(first seen at .*in.jsonl:1\)"):
        list(iter_records(path, COLUMNS))


@pytest.mark.parametrize("value", ['{"a": 1}', "[1, 2]"])
def test_structured_ids_are_refused(tmp_path, value):
    path = tmp_path / "in.jsonl"
    path.write_text(f'{{"id": {value}}}\n')
    with pytest.raises(InputError, match=r"in.jsonl:1: 'id' must be a string or a number"):
        list(iter_records(path, COLUMNS))


def test_empty_inputs_are_refused(tmp_path):
    (tmp_path / "in.json").write_text("[]")
    with pytest.raises(InputError, match="in.json: the input holds no records"):
        list(iter_records(tmp_path / "in.json", COLUMNS))
    pq.write_table(pa.table({"id": pa.array([], pa.string())}), tmp_path / "in.parquet")
    assert count_records(tmp_path / "in.parquet", COLUMNS) == 0
    with pytest.raises(InputError, match="in.parquet: the input holds no records"):
        list(iter_records(tmp_path / "in.parquet", COLUMNS))
