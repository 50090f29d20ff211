"""Inputs users already have, end to end through `snakemake`: a folder of images, a Parquet
file as Hugging Face `datasets` writes image datasets, a wrapped JSON object, and a Parquet
round trip that keeps nested fields and integer ids."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time

import polars as pl
import pytest
from PIL import Image

from workflow_helpers import (
    DEMO_IMAGES,
    SNAKEFILE,
    TEST_KEY,
    job_environment,
    read_output,
    snakemake,
    tagged_records,
    write_config,
)

pytestmark = pytest.mark.workflow


def test_a_folder_of_images_is_an_input(workdir, server):
    nested = workdir / "photos" / "trip"
    nested.mkdir(parents=True)
    shutil.copy(DEMO_IMAGES / "sunset.jpg", workdir / "photos" / "B.JPG")
    shutil.copy(DEMO_IMAGES / "lighthouse.png", nested / "a.png")
    (workdir / "photos" / "notes.txt").write_text("not an image")
    write_config(workdir, server.base_url, input="photos", pipeline="image_vqa")
    snakemake(workdir)
    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == ["B.JPG", "trip/a.png"]
    assert dataset[1]["image"] == "photos/trip/a.png"  # relative to images.root, as config/README.md says
    with Image.open(nested / "a.png") as picture:
        assert f"{picture.width}x{picture.height} PNG" in server.stats["image_sizes"]
    assert all(r["parse"]["status"] == "ok" for r in dataset)


def test_hugging_face_parquet_with_embedded_image_bytes(tmp_path, server):
    datasets = pytest.importorskip("datasets")
    workdir = tmp_path / "hf"
    workdir.mkdir()
    pictures = []
    with Image.open(DEMO_IMAGES / "sunset.jpg") as source:
        for n in range(6):  # six different sizes: each answer must describe its own image
            buffer = io.BytesIO()
            source.convert("RGB").resize((100 + 10 * n, 80 + 5 * n)).save(buffer, format="JPEG")
            pictures.append(buffer.getvalue())
    table = datasets.Dataset.from_dict({
        "image": [{"bytes": data, "path": None} for data in pictures],
        "caption": [f"picture {n}" for n in range(6)],
    }).cast_column("image", datasets.Image())
    table.to_parquet(str(workdir / "train-00000-of-00001.parquet"))
    assert not list(workdir.glob("*.jpg")), "no image files on disk"
    write_config(workdir, server.base_url, input="train-*.parquet", shard_size=4)
    snakemake(workdir)

    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["caption"] for r in dataset] == [f"picture {n}" for n in range(6)]
    for n, record in enumerate(dataset):
        assert f"{100 + 10 * n}x{80 + 5 * n} JPEG" in record["vqa"], record["vqa"]
        assert str(record["image"]).startswith("sha256:"), "no image bytes in a JSON dataset"
        assert record["parse"]["status"] == "ok"
    assert server.stats["requests"] == 6


def test_a_wrapped_json_object_uses_its_one_list(workdir, server):
    records = tagged_records(workdir, 3)
    (workdir / "wrapped.json").write_text(json.dumps({"records": records, "version": 2}))
    write_config(workdir, server.base_url, input="wrapped.json")
    result = snakemake(workdir)
    assert [r["id"] for r in read_output(workdir, "dataset.jsonl")] == ["r000", "r001", "r002"]
    assert "records" in result.stderr


def test_parquet_round_trip_keeps_nested_fields_and_integer_ids(workdir, server):
    records = [
        {"id": n, "image": f"images/{name}", "tags": ["a", "b"], "meta": {"source": "cam", "score": n / 2}}
        for n, name in enumerate(sorted(p.name for p in (workdir / "images").iterdir())[:3])
    ]
    pl.DataFrame(records).write_parquet(workdir / "in.parquet")
    write_config(workdir, server.base_url, input="in.parquet", pipeline="image_vqa", output_format="parquet")
    snakemake(workdir)
    out = pl.read_parquet(workdir / "results/test/dataset.parquet")
    assert out["id"].dtype == pl.Int64 and out["id"].to_list() == [0, 1, 2]
    assert out["tags"].to_list() == [["a", "b"]] * 3
    assert out["meta"].to_list()[1] == {"source": "cam", "score": 0.5}


def test_odd_files_in_a_folder_fail_alone_and_for_good(workdir, server):
    photos = workdir / "photos"
    photos.mkdir()
    for name in ("sunset.jpg", "lighthouse.png"):
        shutil.copy(DEMO_IMAGES / name, photos / name)
    os.mkfifo(photos / "fifo.png")  # reading it would wait forever
    (photos / "loop.png").symlink_to(photos / "loop.png")
    (photos / "empty.png").write_bytes(b"")
    write_config(workdir, server.base_url, input="photos", pipeline="image_vqa", backend="batch",
                 max_failed_fraction=1.0, batch={"poll_s": 0.05, "max_poll_s": 0.1})
    started = time.monotonic()
    result = snakemake(workdir, timeout=120)
    assert time.monotonic() - started < 60
    assert "fifo.png: not a regular file" in result.stderr
    assert [r["id"] for r in read_output(workdir, "dataset.jsonl")] == ["lighthouse.png", "sunset.jpg"]
    failed = {f["id"]: f for f in read_output(workdir, "failed.jsonl")}
    assert sorted(failed) == ["empty.png", "loop.png"]
    assert all(f["kind"] == "image" and not f["transient"] for f in failed.values())
    assert "empty image file" in failed["empty.png"]["error"] and "loop.png" in failed["loop.png"]["error"]
    assert server.batch_stats["lines_per_batch"] == [2]
    rerun = snakemake(workdir)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
    assert server.batch_stats["batches_created"] == 1


def test_parquet_types_survive_and_a_null_image_fails_alone(workdir, server):
    import pyarrow as pa
    import pyarrow.parquet as pq

    photo = (DEMO_IMAGES / "sunset.jpg").read_bytes()
    schema = pa.schema([
        ("id", pa.int64()), ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("tags", pa.list_(pa.string())), ("meta", pa.struct([("source", pa.string()), ("score", pa.float64())])),
    ])
    rows = [{"id": n, "image": {"bytes": photo, "path": None}, "tags": ["a", str(n)],
             "meta": {"source": "cam", "score": n / 2}} for n in range(3)]
    rows.insert(1, {"id": 7, "image": {"bytes": None, "path": None}, "tags": [], "meta": {"source": None, "score": 1.0}})
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), workdir / "in.parquet")
    write_config(workdir, server.base_url, input="in.parquet", pipeline="image_vqa", output_format="parquet",
                 max_failed_fraction=0.5)
    snakemake(workdir)
    failed = read_output(workdir, "failed.jsonl")
    assert [(f["id"], f["kind"], f["transient"]) for f in failed] == [("7", "image", False)]
    out = pl.read_parquet(workdir / "results/test/dataset.parquet")
    source = pl.read_parquet(workdir / "in.parquet")
    assert {name: out.schema[name] for name in ("id", "tags", "meta")} == \
           {name: source.schema[name] for name in ("id", "tags", "meta")}
    assert out["id"].to_list() == [0, 1, 2] and out["tags"].to_list()[2] == ["a", "2"]
    assert out["meta"].to_list()[1] == {"source": "cam", "score": 0.5}
    assert out["image"].dtype == pl.String  # the bytes stay out of the dataset, named by their digest
# `snakemake` in a process that records every file it opens and every directory it lists
AUDITED_SNAKEMAKE = """
import atexit, json, os, sys
watched, report = sys.argv.pop(1), sys.argv.pop(1)
touched = []
def hook(event, args):
    if event in ("open", "os.scandir", "os.listdir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(watched):
            touched.append([event, path])
atexit.register(lambda: open(report, "w").write(json.dumps(touched)))
sys.addaudithook(hook)
from snakemake.cli import main
main()
"""


def test_each_parse_reads_the_manifest_not_the_folder(workdir, server):
    """Every job parses the Snakefile again: with the manifest written, a parse lists no
    directory of the input and opens none of its files; a new image is planned."""
    photos = workdir / "photos"
    for n, source in enumerate(sorted(DEMO_IMAGES.iterdir())[:3]):
        (photos / f"d{n % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(source, photos / f"d{n % 2}" / source.name)
    past = time.time() - 60
    for path in [photos, *photos.rglob("*")]:
        os.utime(path, (past, past))
    write_config(workdir, server.base_url, input="photos", pipeline="image_vqa", shard_size=3)
    snakemake(workdir)
    manifest = workdir / "results/test/manifest/input.json"
    assert json.loads(manifest.read_text())["records"] == 3
    assert (workdir / "results/test/manifest/files.jsonl").read_text().count("\n") == 3

    def dry_run() -> tuple[list, str]:
        report = workdir / "touched.json"
        result = subprocess.run(
            [sys.executable, "-c", AUDITED_SNAKEMAKE, str(photos), str(report), "-n", "--snakefile",
             str(SNAKEFILE), "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
             "--cores", "1"],
            env=job_environment(TEST_KEY, None), capture_output=True, text=True, check=True)
        return json.loads(report.read_text()), result.stdout + result.stderr

    touched, out = dry_run()
    assert touched == [] and "Nothing to be done" in out
    shutil.copy(DEMO_IMAGES / "sunset.jpg", photos / "d1" / "more.jpg")
    touched, out = dry_run()
    assert ["os.scandir", str(photos / "d1")] in touched, "a changed folder is listed again"
    assert json.loads(manifest.read_text())["records"] == 4 and "shard-00001" in out
