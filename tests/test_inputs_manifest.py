"""Parse once: the input's count and a folder's image list come from results/<run>/manifest/
while the input is unchanged, and a changed input is planned again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vqaflow.inputs.manifest import RACY_NS, plan_input, read_file_list
from vqaflow.inputs.shards import write_shards
from vqaflow.inputs.specs import InputError, image_files
from workflow_helpers import COLUMNS, REPO


def age(*paths: Path, seconds: float = 60) -> None:
    """Set mtimes into the past, as for an input written a while before the run."""
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


def jsonl(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"r{i}", "image": f"{i}.png"}) + "\n" for i in range(n)))
    return path


def tree(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"png")
    age(*[p for p in root.rglob("*")], root)
    return root


def test_an_unchanged_file_is_planned_from_the_manifest(tmp_path):
    source = jsonl(tmp_path / "in.jsonl", 7)
    age(source)
    manifest = tmp_path / "results" / "manifest" / "input.json"
    first = plan_input(source, COLUMNS, 3, manifest)
    assert (first.records, first.shards, first.from_manifest) == (7, ["shard-00000", "shard-00001", "shard-00002"], False)
    assert json.loads(manifest.read_text())["records"] == 7
    again = plan_input(source, COLUMNS, 3, manifest)
    assert again.from_manifest and again.records == 7 and again.shards == first.shards
    resharded = plan_input(source, COLUMNS, 2, manifest)  # a new shard size: the count is reused
    assert resharded.from_manifest and resharded.shards == [f"shard-{k:05d}" for k in range(4)]
    assert json.loads(manifest.read_text())["shard_size"] == 2


def test_a_changed_file_is_planned_again(tmp_path):
    source = jsonl(tmp_path / "in.jsonl", 7)
    age(source)
    manifest = tmp_path / "m" / "input.json"
    plan_input(source, COLUMNS, 3, manifest)
    jsonl(source, 12)
    age(source, seconds=30)  # an older mtime than before would also count: any difference does
    changed = plan_input(source, COLUMNS, 3, manifest)
    assert (changed.records, changed.from_manifest) == (12, False)
    assert plan_input(source, COLUMNS, 3, manifest).from_manifest


def test_a_glob_gaining_a_file_is_planned_again(tmp_path):
    a, b = jsonl(tmp_path / "a.jsonl", 2), jsonl(tmp_path / "b.jsonl", 3)
    age(a, b)
    manifest = tmp_path / "m" / "input.json"
    assert plan_input(tmp_path / "*.jsonl", COLUMNS, 10, manifest).records == 5
    assert plan_input(tmp_path / "*.jsonl", COLUMNS, 10, manifest).from_manifest
    age(jsonl(tmp_path / "c.jsonl", 4))
    grown = plan_input(tmp_path / "*.jsonl", COLUMNS, 10, manifest)
    assert (grown.records, grown.from_manifest) == (9, False)


def test_a_just_written_input_is_not_trusted(tmp_path):
    """Within the file system's timestamp granularity a change could keep the mtime: an input
    written just before planning is counted again at the next parse."""
    source = jsonl(tmp_path / "in.jsonl", 4)
    manifest = tmp_path / "m" / "input.json"
    plan_input(source, COLUMNS, 3, manifest)
    assert not plan_input(source, COLUMNS, 3, manifest).from_manifest
    written = os.stat(manifest).st_mtime_ns
    os.utime(source, ns=(written - RACY_NS - 10**9,) * 2)
    assert not plan_input(source, COLUMNS, 3, manifest).from_manifest, "the stamp changed: counted again"
    assert plan_input(source, COLUMNS, 3, manifest).from_manifest


def test_other_keys_or_spec_or_a_broken_manifest_plan_again(tmp_path):
    source = jsonl(tmp_path / "in.jsonl", 4)
    other = jsonl(tmp_path / "other.jsonl", 5)
    age(source, other)
    manifest = tmp_path / "m" / "input.json"
    plan_input(source, COLUMNS, 3, manifest)
    assert not plan_input(source, COLUMNS.__class__(**{**COLUMNS.__dict__, "id": "key"}), 3, manifest).from_manifest
    assert plan_input(other, COLUMNS, 3, manifest).records == 5
    assert plan_input(other, COLUMNS, 3, manifest).from_manifest
    saved = manifest.read_text()
    manifest.write_text("{not json")
    assert plan_input(other, COLUMNS, 3, manifest).records == 5
    manifest.write_text(saved.replace('"records":5', '"records":"many"'))
    assert not plan_input(other, COLUMNS, 3, manifest).from_manifest


def test_a_folder_is_checked_by_its_directories_mtimes(tmp_path):
    root = tree(tmp_path / "pics", ["a.png", "sub/b.jpg", "sub/deep/c.png", "notes.txt"])
    manifest = tmp_path / "m" / "input.json"
    first = plan_input(root, COLUMNS, 2, manifest)
    assert (first.records, first.from_manifest) == (3, False)
    assert read_file_list(first.files) == image_files(root) == ["a.png", "sub/b.jpg", "sub/deep/c.png"]
    (root / "a.png").write_bytes(b"an edited image")  # in place: the list and count stay
    assert plan_input(root, COLUMNS, 2, manifest).from_manifest
    (root / "sub" / "deep" / "d.png").write_bytes(b"png")
    deeper = plan_input(root, COLUMNS, 2, manifest)
    assert (deeper.records, deeper.from_manifest) == (4, False)
    tree(root, ["x.png"])  # every mtime aged again
    plan_input(root, COLUMNS, 2, manifest)
    assert plan_input(root, COLUMNS, 2, manifest).from_manifest
    (root / "sub" / "new").mkdir()
    (root / "sub" / "new" / "e.png").write_bytes(b"png")
    age(root / "sub" / "new" / "e.png", root / "sub" / "new")  # only the parent's mtime tells
    grown = plan_input(root, COLUMNS, 2, manifest)
    assert (grown.records, grown.from_manifest) == (6, False)
    assert "sub/new/e.png" in read_file_list(grown.files)
    tree(root, [])
    plan_input(root, COLUMNS, 2, manifest)
    assert plan_input(root, COLUMNS, 2, manifest).from_manifest
    os.rename(root / "sub" / "deep", root / "sub" / "moved")
    renamed = plan_input(root, COLUMNS, 2, manifest)
    assert not renamed.from_manifest and "sub/moved/c.png" in read_file_list(renamed.files)


def test_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "pics").mkdir()
    with pytest.raises(InputError, match="no image files"):
        plan_input(tmp_path / "pics", COLUMNS, 2, tmp_path / "m" / "input.json")


def test_the_split_uses_the_planned_list(tmp_path):
    root = tree(tmp_path / "pics", ["a.png", "b.png", "c.png"])
    shard_of = write_shards(root, [tmp_path / "s.jsonl"], 5, COLUMNS, files=["a.png", "c.png"])
    assert list(shard_of) == ["a.png", "c.png"], "the list as planned, not a new listing"


def test_a_results_folder_that_cannot_be_written_only_costs_a_count(tmp_path):
    source = jsonl(tmp_path / "in.jsonl", 4)
    (tmp_path / "file").write_text("")
    plan = plan_input(source, COLUMNS, 3, tmp_path / "file" / "manifest" / "input.json")
    assert (plan.records, plan.from_manifest) == (4, False)


# A parse in a fresh process, with an audit hook recording every file opened and every
# directory listed: with the manifest in place nothing of the input is read.
WATCHED = """
import json, sys
sys.path.insert(0, {scripts!r})
from vqaflow.columns import Columns
from vqaflow.inputs.manifest import plan_input
spec, manifest, watched = sys.argv[1], sys.argv[2], sys.argv[3]
touched = []
def hook(event, args):
    if event in ("open", "os.scandir", "os.listdir") and args and str(args[0]).startswith(watched):
        touched.append([event, str(args[0])])
sys.addaudithook(hook)
plan = plan_input(spec, Columns('id', 'image', 'conversation', 'vqa', 'context_vqa', 'qas'), 2, manifest)
print(json.dumps({{"records": plan.records, "from_manifest": plan.from_manifest, "touched": touched}}))
"""


def parse_watched(spec: Path, manifest: Path, watched: Path) -> dict:
    script = WATCHED.format(scripts=str(REPO / "scripts"))
    out = subprocess.run([sys.executable, "-c", script, str(spec), str(manifest), str(watched)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("kind", ["file", "glob", "folder"])
def test_an_unchanged_input_is_not_read_again(tmp_path, kind):
    data = tmp_path / "data"
    data.mkdir()
    if kind == "folder":
        spec = tree(data, [f"d{i % 3}/{i}.png" for i in range(10)])
    else:
        age(jsonl(data / "a.jsonl", 6), jsonl(data / "b.jsonl", 4))
        spec = data / "a.jsonl" if kind == "file" else data / "*.jsonl"
    manifest = tmp_path / "results" / "manifest" / "input.json"
    first = parse_watched(spec, manifest, data)
    assert not first["from_manifest"] and first["touched"], "the first parse reads the input"
    later = parse_watched(spec, manifest, data)
    assert later["records"] == first["records"] and later["from_manifest"]
    if kind == "glob":  # the pattern is matched again: its directory listed, no file opened
        assert later["touched"] and all(event != "open" and path == str(data) for event, path in later["touched"])
    else:
        assert later["touched"] == []
