"""Portable outputs (issue 22): image paths in the dataset and every export are as the input gave
them, or relative to ``images.root`` for a folder input; never an absolute path the input did not
have. A results folder copied elsewhere together with its images still reaches every image."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from vqaflow.inputs.readers import folder_image_path, iter_records
from workflow_helpers import COLUMNS, DEMO_IMAGES, REPO, read_output, snakemake, write_config


def test_a_folder_input_names_its_images_relative_to_the_image_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos" / "trip").mkdir(parents=True)
    assert folder_image_path("photos", "trip/a.png", ".") == "photos/trip/a.png"
    assert folder_image_path("photos", "trip/a.png", "photos") == "trip/a.png"
    assert folder_image_path(tmp_path / "photos", "trip/a.png", ".") == "photos/trip/a.png"
    assert folder_image_path("photos", "trip/a.png", "elsewhere") == "../photos/trip/a.png"
    # an absolute folder outside the root: the input gave an absolute path, it stays absolute
    outside = tmp_path.parent / "outside"
    assert folder_image_path(outside, "a.png", ".") == str(outside / "a.png")


def test_folder_records_carry_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    shutil.copy(DEMO_IMAGES / "lighthouse.png", tmp_path / "photos" / "a.png")
    [(_, record)] = iter_records("photos", COLUMNS, ".")
    assert record == {"id": "a.png", "image": "photos/a.png"}
    [(_, record)] = iter_records("photos", COLUMNS, "photos")
    assert record["image"] == "a.png"


def image_paths(workdir: Path) -> dict[str, list[str]]:
    """Every image path in the dataset and the exports (conversations, Parquet), by output."""
    def flat(values):
        for value in values:
            yield from (value if isinstance(value, list) else [value])

    dataset = read_output(workdir, "dataset.jsonl")
    chats = json.loads((workdir / "results/test/export/conversations.json").read_text())
    table = pl.read_parquet(workdir / "results/test/export/dataset.parquet")
    return {
        "dataset.jsonl": list(flat(r["image"] for r in dataset)),
        "export/conversations.json": list(flat(c["image"] for c in chats)),
        "export/dataset.parquet": list(flat(table["images"].to_list())),
    }


def assert_portable(workdir: Path, moved: Path, *image_dirs: str) -> dict[str, list[str]]:
    """No absolute path in the outputs; a copy of results/ and the images at ``moved`` reads
    every image through the copied outputs' paths, relative to images.root (the working
    directory here), with the original tree gone."""
    found = image_paths(workdir)
    for output, paths in found.items():
        assert paths, output
        absolute = [p for p in paths if os.path.isabs(p) or str(workdir) in p]
        assert not absolute, f"{output}: {absolute}"
    shutil.copytree(workdir / "results", moved / "results")
    for name in image_dirs:
        shutil.copytree(workdir / name, moved / name)
    shutil.rmtree(workdir)
    for output, paths in image_paths(moved).items():
        for path in paths:
            with Image.open(moved / path) as picture:
                picture.load()
    return found


@pytest.mark.workflow
def test_folder_input_outputs_survive_a_move(tmp_path, server):
    workdir = tmp_path / "run"
    (workdir / "photos" / "trip").mkdir(parents=True)
    shutil.copy(DEMO_IMAGES / "sunset.jpg", workdir / "photos" / "b.jpg")
    shutil.copy(DEMO_IMAGES / "lighthouse.png", workdir / "photos" / "trip" / "a.png")
    write_config(workdir, server.base_url, input="photos", pipeline="image_vqa")
    snakemake(workdir, "preview", "all", "hub")
    hub = pl.read_parquet(workdir / "results/test/hub/data/*.parquet")
    assert [row["path"] for row in hub["image"].to_list()] == ["photos/b.jpg", "photos/trip/a.png"]
    sampled = read_output(workdir, "preview/sample.jsonl")
    assert sorted(json.dumps(line).count("photos/") for line in sampled) == [1, 1]
    assert str(workdir) not in (workdir / "results/test/preview/sample.jsonl").read_text()
    found = assert_portable(workdir, tmp_path / "moved", "photos")
    assert found["dataset.jsonl"] == ["photos/b.jpg", "photos/trip/a.png"]


@pytest.mark.workflow
def test_demo_outputs_keep_the_input_paths_and_survive_a_move(tmp_path, server):
    workdir = tmp_path / "run"
    shutil.copytree(REPO / "demo", workdir / "demo")
    given = {path for record in json.loads((workdir / "demo/sample_data.json").read_text())
             for path in record["image"]}
    write_config(workdir, server.base_url, input="demo/sample_data.json")
    snakemake(workdir)
    found = assert_portable(workdir, tmp_path / "moved", "demo")
    for output, paths in found.items():
        assert set(paths) <= given, output  # as the input wrote them ("./demo/images/...")
