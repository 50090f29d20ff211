import json

import polars as pl
import pytest

from vqaflow.inputs.readers import iter_records
from vqaflow.inputs.shards import count_records, shard_names, write_shards
from vqaflow.inputs.specs import InputError
from workflow_helpers import COLUMNS


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_types_survive_reading(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "007", "n": 1.0, "when": "2024-01-01", "x": None}])
    [(rid, record)] = list(iter_records(path, COLUMNS))
    assert rid == "007"
    assert record == {"id": "007", "n": 1.0, "when": "2024-01-01", "x": None}


def test_positional_ids_for_records_without_id(tmp_path):
    path = tmp_path / "in.json"
    path.write_text(json.dumps([{"image": "a.png"}, {"image": ["b.png", "c.png"]}]))
    assert [rid for rid, _ in iter_records(path, COLUMNS)] == ["row-0", "row-1"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"id": 1}\n{"id": 2\n', "in.jsonl:2: invalid JSON"),
        ('{"id": 1}\n[1, 2]\n', "in.jsonl:2: a record must be a JSON object"),
        ('{"id": 1}\n{"id": 1}\n', "duplicate id '1'"),
        ("\n\n", "holds no records"),
        ('{"image": 5}\n', "'image' must be a path, a "),
        ('{"conversation": "hi"}\n', "'conversation' must be a list of turns"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(")):
        list(iter_records(path, COLUMNS))


def test_bad_json_array(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('[{"id": 1}, 3]')
    with pytest.raises(InputError, match=r"in.json: record 1: a record must be a JSON object"):
        list(iter_records(path, COLUMNS))


def test_parquet_input(tmp_path):
    path = tmp_path / "in.parquet"
    pl.DataFrame({"id": ["a", "b"], "image": [["x.png"], ["y.png", "z.png"]]}).write_parquet(path)
    assert count_records(path, COLUMNS) == 2
    assert list(iter_records(path, COLUMNS)) == [
        ("a", {"id": "a", "image": ["x.png"]}),
        ("b", {"id": "b", "image": ["y.png", "z.png"]}),
    ]


def test_unsupported_extension(tmp_path):
    with pytest.raises(InputError, match="unsupported input format '.csv'"):
        count_records(tmp_path / "in.csv", COLUMNS)


def test_sharding_is_deterministic_and_ordered(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": i} for i in range(10)])
    names = shard_names(count_records(path, COLUMNS), 4)
    assert names == ["shard-00000", "shard-00001", "shard-00002"]
    paths = [tmp_path / f"{n}.jsonl" for n in names]
    assert len(write_shards(path, paths, 4, COLUMNS)) == 10
    first = [p.read_text() for p in paths]
    write_shards(path, paths, 4, COLUMNS)
    assert [p.read_text() for p in paths] == first
    lines = [json.loads(line) for p in paths for line in p.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(10))
    assert [len(p.read_text().splitlines()) for p in paths] == [4, 4, 2]


def test_sharding_refuses_a_changed_input(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": i} for i in range(3)])
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    with pytest.raises(InputError, match="do not fill the 2 planned shards"):
        write_shards(path, paths, 4, COLUMNS)
    assert not any(p.exists() for p in paths)


def test_sharding_bad_input_writes_nothing(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1}\n{oops\n')
    target = tmp_path / "s.jsonl"
    with pytest.raises(InputError, match=":2: invalid JSON"):
        write_shards(path, [target], 4, COLUMNS)
    assert not target.exists()
