"""Input specs: a file, a glob of files, a directory of images."""

import json
import os

import polars as pl
import pytest

from vqaflow.inputs.readers import iter_records
from vqaflow.inputs.shards import count_records, shard_names, write_shards
from vqaflow.inputs.specs import InputError, input_files, input_kind
from workflow_helpers import COLUMNS


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def image_dir(tmp_path):
    root = tmp_path / "photos"
    for rel in ["b/z.JPG", "a.png", "b/c/deep.Jpeg", "b/a.webp", "A.GIF", "x.tif", "x.TIFF", "m.bmp"]:
        touch(root / rel)
    for rel in ["notes.txt", "b/meta.json", "b/c/archive.zip", ".hidden.jpg", ".cache/y.png", "noext"]:
        touch(root / rel)
    (root / "dir.jpg").mkdir()  # a directory named like an image is not one
    return root


def test_directory_of_images(image_dir, tmp_path):
    expected = ["A.GIF", "a.png", "b/a.webp", "b/c/deep.Jpeg", "b/z.JPG", "m.bmp", "x.TIFF", "x.tif"]
    assert input_kind(image_dir) == "directory"
    assert input_files(image_dir) == [image_dir / rel for rel in expected]
    assert count_records(image_dir, COLUMNS) == len(expected)
    records = list(iter_records(image_dir, COLUMNS))
    assert [rid for rid, _ in records] == expected
    for rel, (rid, record) in zip(expected, records):
        assert record == {"id": rel, "image": str(image_dir / rel)}
        assert os.path.isabs(record["image"]) and os.path.isfile(record["image"])


def test_directory_records_are_stable_and_use_the_configured_keys(image_dir, tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.chdir(tmp_path)  # image paths are relative to images.root (here the working directory)
    keys = replace(COLUMNS, image="img", id="key")
    first = list(iter_records("photos", keys))
    assert list(iter_records("photos/", keys)) == first
    # the same tree made in the opposite order gives the same ids in the same order
    for rel in reversed([rid for rid, _ in first]):
        touch(tmp_path / "again" / rel)
    assert [rid for rid, _ in iter_records("again", keys)] == [rid for rid, _ in first]
    assert first[0][1] == {"key": "A.GIF", "img": "photos/A.GIF"}

    names = shard_names(count_records("photos", COLUMNS), 3)
    paths = [tmp_path / "shards" / f"{n}.jsonl" for n in names]
    assert len(write_shards("photos", paths, 3, keys)) == 8
    lines = [json.loads(line) for p in paths for line in p.read_text().splitlines()]
    assert [line["id"] for line in lines] == [rid for rid, _ in first]


def test_directory_without_images_is_refused(tmp_path):
    touch(tmp_path / "docs" / "readme.txt")
    with pytest.raises(InputError, match=r"docs: the directory holds no image files \(bmp, gif, jpeg"):
        count_records(tmp_path / "docs", COLUMNS)
    with pytest.raises(InputError, match="docs: the directory holds no image files"):
        list(iter_records(tmp_path / "docs", COLUMNS))


def write_parquet_parts(tmp_path):
    (tmp_path / "data").mkdir()
    parts = [
        pl.DataFrame({"id": ["a", "b"], "image": ["1.png", "2.png"]}),
        pl.DataFrame({"id": [None, None, None], "image": ["3.png", "4.png", "5.png"]}),
        pl.DataFrame({"id": ["c"], "image": ["6.png"]}),
    ]
    for k, frame in enumerate(parts):
        frame.write_parquet(tmp_path / "data" / f"train-{k:05d}-of-00003.parquet")
    (tmp_path / "data" / "test-00000-of-00001.parquet").write_bytes(b"not matched")
    return str(tmp_path / "data" / "train-*.parquet")


def test_glob_of_parquet_files_is_one_input(tmp_path):
    spec = write_parquet_parts(tmp_path)
    assert input_kind(spec) == "glob"
    assert [p.name for p in input_files(spec)] == [f"train-{k:05d}-of-00003.parquet" for k in range(3)]
    assert count_records(spec, COLUMNS) == 6
    records = list(iter_records(spec, COLUMNS))
    # positions count across the files, so positional ids stay unique
    assert [rid for rid, _ in records] == ["a", "b", "row-2", "row-3", "row-4", "c"]
    assert [r["image"] for _, r in records] == [f"{n}.png" for n in range(1, 7)]
    paths = [tmp_path / f"s{k}.jsonl" for k in range(2)]
    assert len(write_shards(spec, paths, 4, COLUMNS)) == 6


def test_glob_places_name_the_file(tmp_path):
    spec = write_parquet_parts(tmp_path)
    pl.DataFrame({"id": ["a"]}).write_parquet(tmp_path / "data" / "train-00002-of-00003.parquet")
    with pytest.raises(InputError) as err:
        list(iter_records(spec, COLUMNS))
    assert "train-00002-of-00003.parquet: row 0: duplicate id 'a'" in str(err.value)
    assert "first seen at " in str(err.value) and "train-00000-of-00003.parquet: row 0" in str(err.value)


def test_glob_of_jsonl_files(tmp_path):
    for k in range(3):
        (tmp_path / f"part{k}.jsonl").write_text(json.dumps({"id": k}) + "\n" + json.dumps({"x": k}) + "\n")
    spec = str(tmp_path / "part*.jsonl")
    assert count_records(spec, COLUMNS) == 6
    assert [rid for rid, _ in iter_records(spec, COLUMNS)] == ["0", "row-1", "1", "row-3", "2", "row-5"]
    (tmp_path / "part1.jsonl").write_text('{"id": 9}\n{oops\n')
    with pytest.raises(InputError, match=r"part1.jsonl:2: invalid JSON"):
        list(iter_records(spec, COLUMNS))


def test_recursive_glob(tmp_path):
    for rel in ["a/x.jsonl", "a/b/y.jsonl"]:
        touch(tmp_path / rel, b'{"n": 1}\n')
    assert [p.relative_to(tmp_path).as_posix() for p in input_files(str(tmp_path / "**" / "*.jsonl"))] == [
        "a/b/y.jsonl", "a/x.jsonl",
    ]


def test_glob_matching_nothing_is_refused(tmp_path):
    spec = str(tmp_path / "data" / "train-*.parquet")
    with pytest.raises(InputError, match=r"data/train-\*\.parquet: no file matches this pattern"):
        count_records(spec, COLUMNS)
    with pytest.raises(InputError, match="no file matches this pattern"):
        list(iter_records(spec, COLUMNS))


def test_glob_matching_an_unsupported_file_is_refused(tmp_path):
    touch(tmp_path / "a.jsonl", b'{"n": 1}\n')
    touch(tmp_path / "notes.txt")
    with pytest.raises(InputError, match=r"notes.txt: unsupported input format '.txt'"):
        count_records(str(tmp_path / "*"), COLUMNS)


def test_missing_file(tmp_path):
    assert input_kind(tmp_path / "in.jsonl") == "file"
    with pytest.raises(InputError, match="in.jsonl: input file does not exist"):
        count_records(tmp_path / "in.jsonl", COLUMNS)


def test_existing_file_with_glob_characters_in_its_name(tmp_path):
    path = touch(tmp_path / "odd[1].jsonl", b'{"id": 1}\n')
    assert input_kind(path) == "file"
    assert count_records(path, COLUMNS) == 1
