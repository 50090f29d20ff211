"""The Hub folder (`snakemake hub`): Parquet parts with embedded images that `datasets` reads, the
dataset card, and the upload (against a local stand-in for the Hub)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from chat_server import ChatServer
from hub_server import HubServer
from vqaflow.costs import Prices
from vqaflow.settings import prompt_settings
from vqaflow.stages.export import ExportFilters
from vqaflow.stages.hub import HubError, build_folder, upload
from vqaflow.stages.hub_card import CardSettings
from vqaflow.stages.merge import summarise
from workflow_helpers import (
    COLUMNS,
    schema_defaults,
    snakemake,
    tagged_records,
    write_config,
    write_records,
)

datasets = pytest.importorskip("datasets")

SIZES = [(40, 30), (32, 48), (64, 20), (24, 24), (50, 10)]
KEEP_ALL = ExportFilters(drop_unparsed=True, drop_ungrounded=False, dedupe_questions=True, drop_flags=[], keep="all")


def config(**sections) -> dict:
    """The schema's defaults with a few sections changed."""
    made = {**schema_defaults(), "run": "unit", "input": "records.jsonl", "pipeline": "context_vqa"}
    for key, value in sections.items():
        made[key] = {**made[key], **value} if isinstance(value, dict) else value
    return made


def card_settings(made: dict, **overrides) -> CardSettings:
    settings = {
        "run": made["run"], "input": made["input"], "backend": made["backend"], "model": made["api"]["model"],
        "license": made["hub"]["license"], "repo": made["hub"]["repo"],
        "structured_output": made["structured_output"], "generation": made["generation"],
        "rule_filters": made["filters"], "export": made["export"], "dedup": made["dedup"], "judge": None,
    }
    return CardSettings(**{**settings, **overrides})


def finished(record_id: str, image, qas: list[dict], status: str = "ok", context: str = "An article.") -> dict:
    """A finished (refined) context_vqa record as the workflow writes it."""
    return {
        "id": record_id, "image": image, "vqa": "raw answer",
        "context_vqa": {"context": context, "qas": [{"flags": [], **qa} for qa in qas]},
        "parse": {"status": status, "issues": [], "truncated": False, "grounded": [True] * len(qas)},
        "generation": {"backend": "api", "model": "test-vlm", "prompt_tokens": 10, "completion_tokens": 5},
    }


def make_images(folder: Path) -> list[str]:
    """PNGs of different sizes under folder/images; their paths relative to ``folder``."""
    (folder / "images").mkdir(parents=True)
    names = []
    for n, size in enumerate(SIZES):
        Image.new("RGB", size, (40 * n, 90, 200)).save(folder / "images" / f"p{n}.png")
        names.append(f"images/p{n}.png")
    return names


def build(tmp_path: Path, records: list[dict], inputs: list[dict] | None = None, source: Path | None = None,
          filters: ExportFilters = KEEP_ALL, max_part_bytes: int = 2**30, pipeline: str = "context_vqa",
          **card) -> tuple[Path, object]:
    """The Hub folder of finished ``records``; the input: ``source``, else ``inputs`` (default: the
    records themselves) written as JSONL."""
    made = config(images={"root": str(tmp_path)}, pipeline=pipeline)
    refined = tmp_path / "refined.jsonl"
    refined.write_text("".join(json.dumps(r) + "\n" for r in records))
    if source is None:
        source = tmp_path / "records.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in (inputs or records)))
    settings = prompt_settings(made)
    stats = summarise([refined], [], settings.pipeline, COLUMNS, Prices(None, None, 0.5))
    folder = tmp_path / "hub"
    found = build_folder(folder, [refined], stats, str(source), settings, filters, card_settings(made, **card),
                         max_part_bytes)
    return folder, found


def front_matter(folder: Path) -> tuple[dict, str]:
    _, header, body = (folder / "README.md").read_text().split("---\n", 2)
    return yaml.safe_load(header), body


def test_parts_hold_the_images_as_the_image_feature_and_datasets_reads_them(tmp_path):
    names = make_images(tmp_path)
    records = [finished(f"r{n}", name, [{"question": f"What is {n}?", "answer": str(n)}])
               for n, name in enumerate(names)]
    folder, found = build(tmp_path, records, max_part_bytes=300)  # each image is over 100 bytes: parts of 1-2 rows

    parts = sorted(p.name for p in (folder / "data").iterdir())
    assert len(parts) >= 3 and found.records == 5
    assert parts == [f"train-{n:05d}-of-{len(parts):05d}.parquet" for n in range(len(parts))]
    schema = pq.read_schema(folder / "data" / parts[0])
    assert str(schema.field("image").type) == "struct<bytes: binary, path: string>"
    assert json.loads(schema.metadata[b"huggingface"])["info"]["features"]["image"] == {"_type": "Image"}

    loaded = datasets.load_dataset(str(folder), split="train")
    assert loaded.features == datasets.Features({
        "id": datasets.Value("string"), "image": datasets.Image(), "context": datasets.Value("string"),
        "qas": datasets.List({"question": datasets.Value("string"), "answer": datasets.Value("string")}),
        "parse_status": datasets.Value("string"),
    })
    assert loaded["id"] == [f"r{n}" for n in range(5)]
    for n, row in enumerate(loaded):
        assert row["image"].size == SIZES[n]
        assert row["qas"] == [{"question": f"What is {n}?", "answer": str(n)}]
        assert row["context"] == "An article." and row["parse_status"] == "ok"
    assert pq.read_table(folder / "data" / parts[0]).column("image")[0]["path"].as_py() == "images/p0.png"


def test_a_caption_dataset_has_a_caption_column_and_no_pairs(tmp_path):
    names = make_images(tmp_path)
    records = [{"id": f"r{n}", "image": name, "vqa": f"Picture {n}.", "caption": f"Picture {n}.",
                "parse": {"status": "ok" if n else "none", "issues": [], "truncated": False},
                "generation": {"backend": "api", "model": "test-vlm"}} for n, name in enumerate(names)]
    folder, found = build(tmp_path, records, pipeline="image_caption")
    loaded = datasets.load_dataset(str(folder), split="train")
    assert loaded.features == datasets.Features({
        "id": datasets.Value("string"), "image": datasets.Image(), "caption": datasets.Value("string"),
        "parse_status": datasets.Value("string")})
    assert loaded["id"] == ["r1", "r2", "r3", "r4"], "drop_unparsed: r0's caption is none"
    assert loaded["caption"] == [f"Picture {n}." for n in range(1, 5)]
    header, body = front_matter(folder)
    assert header["task_categories"] == ["image-to-text"]
    assert '`image_caption`: a caption of the image' in body and 'row["caption"]' in body
    assert 'row["qas"]' not in body


def test_only_what_the_export_keeps(tmp_path):
    names = make_images(tmp_path)
    records = [
        finished("kept", names[0], [{"question": "Q1?", "answer": "a"},
                                    {"question": "Q2?", "answer": "long one", "flags": ["long_answer"]},
                                    {"question": "q1?", "answer": "again"}]),
        finished("all-flagged", names[1], [{"question": "Q?", "answer": "b", "flags": ["long_answer"]}]),
        finished("unparsed", names[2], [], status="none"),
    ]
    filters = ExportFilters(drop_unparsed=True, drop_ungrounded=False, dedupe_questions=True,
                            drop_flags=["long_answer"], keep="all")
    folder, found = build(tmp_path, records, filters=filters)
    loaded = datasets.load_dataset(str(folder), split="train")
    assert loaded["id"] == ["kept"] and loaded[0]["qas"] == [{"question": "Q1?", "answer": "a"}]
    assert (found.records, found.pairs) == (1, 1)


def test_multi_image_records_get_an_images_column(tmp_path):
    names = make_images(tmp_path)
    records = [finished("two", names[:2], [{"question": "Q?", "answer": "a"}]),
               finished("one", names[2], [{"question": "Q?", "answer": "b"}])]
    folder, _ = build(tmp_path, records)
    loaded = datasets.load_dataset(str(folder), split="train")
    assert loaded.features["images"] == datasets.List(datasets.Image())
    assert [[image.size for image in row["images"]] for row in loaded] == [SIZES[:2], SIZES[2:3]]


def test_embedded_input_images_are_read_from_the_input(tmp_path):
    """A datasets-style Parquet input: the dataset holds the images' names only; the bytes come from the input."""
    import pyarrow as pa

    pictures = []
    for size in SIZES[:2]:
        buffer = io.BytesIO()
        Image.new("RGB", size).save(buffer, format="PNG")
        pictures.append(buffer.getvalue())
    table = pa.table({"id": ["a", "b"], "image": [{"bytes": data, "path": f"{n}.png"} for n, data in enumerate(pictures)]})
    pq.write_table(table, tmp_path / "records.parquet")
    records = [finished(record_id, f"{n}.png", [{"question": "Q?", "answer": "a"}]) for n, record_id in enumerate("ab")]
    folder, _ = build(tmp_path, records, source=tmp_path / "records.parquet")
    loaded = datasets.load_dataset(str(folder), split="train")
    assert [row["image"].size for row in loaded] == SIZES[:2]


def test_an_input_that_changed_after_the_run_is_refused(tmp_path):
    names = make_images(tmp_path)
    records = [finished("r0", names[0], [{"question": "Q?", "answer": "a"}])]
    with pytest.raises(HubError, match="input changed after the run"):
        build(tmp_path, records, inputs=[{"id": "other", "image": names[0]}])


def test_the_card_front_matter_and_body(tmp_path):
    names = make_images(tmp_path)
    records = [finished(f"r{n}", name, [{"question": "Q?", "answer": "a"}]) for n, name in enumerate(names[:3])]
    records[2]["context_vqa"]["qas"][0]["flags"] = ["and_or"]
    records[0]["conversation"] = [{"from": "human", "value": "<image>\nAn article about this harbour."}]
    judge = {"model": "judge-vlm", "prompt": None, "structured_output": True}
    folder, _ = build(tmp_path, records, license="cc-by-4.0", repo="me/vqa", judge=judge)
    header, body = front_matter(folder)
    assert header["license"] == "cc-by-4.0"
    assert header["task_categories"] == ["visual-question-answering"]
    assert header["size_categories"] == ["n<1K"]
    assert header["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    info = header["dataset_info"]
    assert {"name": "image", "dtype": "image"} in info["features"]
    assert info["splits"][0]["num_examples"] == 3
    assert info["download_size"] == sum(p.stat().st_size for p in (folder / "data").iterdir())
    for text in ("`test-vlm`", "`context_vqa`", "System prompt:\n\n```text\nYou are a helpful assistant.\n```",
                 "User prompts: 2 distinct", "2 record(s):\n\n```text\nWrite a Wikipedia article",
                 "1 record(s):\n\n```text\nAn article about this harbour.\n```",
                 "| pairs without a rule flag | 2 |", "`and_or` 1", "`judge-vlm`", "Below are an image (or several)",
                 'load_dataset("me/vqa", split="train")'):
        assert text in body, text


def test_upload_creates_the_repo_and_sends_the_folder_in_place_of_an_earlier_upload(tmp_path):
    from huggingface_hub import HfApi

    folder = tmp_path / "hub"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: other\n---\n# card\n")
    (folder / ".snakemake_timestamp").write_text("")
    for n in range(2):
        (folder / "data" / f"train-0000{n}-of-00002.parquet").write_bytes(b"PAR1 %d" % n)
    with HubServer() as hub:
        api = HfApi(endpoint=hub.url, token="hf_unit_token")
        upload(folder, "me/vqa", True, api)
        assert set(hub.files) == {"README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"}
        for part in (folder / "data").iterdir():
            part.unlink()
        (folder / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 all")
        done = upload(folder, "me/vqa", False, api)
    assert hub.repos[0] == {"name": "vqa", "organization": "me", "visibility": "private", "type": "dataset"}
    assert hub.files == {"README.md": b"---\nlicense: other\n---\n# card\n",
                         "data/train-00000-of-00001.parquet": b"PAR1 all"}
    assert set(hub.authorizations) - {None} == {"Bearer hf_unit_token"}  # (a few lookups go without)
    assert done["repo"] == "me/vqa" and "/commit/" in done["commit"]


def test_upload_without_a_token_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no saved login
    with pytest.raises(HubError, match="HF_TOKEN"):
        upload(tmp_path, "me/vqa", True)


@pytest.mark.workflow
def test_snakemake_hub_on_six_records_uploads_without_leaking_the_token(workdir):
    secret = "hf_workflow_secret_token"
    with ChatServer() as server, HubServer() as hub:
        write_records(workdir, tagged_records(workdir, 6))
        write_config(workdir, server.base_url, hub={"repo": "me/vqa-test", "license": "cc-by-4.0"})
        snakemake(workdir)
        assert not (workdir / "results/test/hub").exists()  # not part of `all`
        result = snakemake(workdir, "hub", env={"HF_TOKEN": secret, "HF_ENDPOINT": hub.url})

    folder = workdir / "results/test/hub"
    loaded = datasets.load_dataset(str(folder), split="train")
    assert len(loaded) == 6 and isinstance(loaded.features["image"], datasets.Image)
    for n, row in enumerate(loaded):
        source = workdir / tagged_records(workdir, 6)[n]["image"][0]
        assert row["image"].size == Image.open(source).size
        assert row["qas"][0] == {"question": f"How many images does rec-{n} have?", "answer": "1"}
    header, body = front_matter(folder)
    assert header["license"] == "cc-by-4.0" and header["task_categories"] == ["visual-question-answering"]
    assert {"name": "image", "dtype": "image"} in header["dataset_info"]["features"]
    assert "`test-vlm`" in body and "`context_vqa`" in body

    assert hub.repos[0]["visibility"] == "private"
    assert set(hub.files) == {"README.md", *(f"data/{p.name}" for p in (folder / "data").iterdir())}
    assert set(hub.authorizations) - {None} == {f"Bearer {secret}"}  # the token reached the Hub, and nothing else:
    assert secret not in result.stdout + result.stderr
    leaked = [str(p) for p in workdir.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not leaked, leaked
    assert json.loads((workdir / "results/test/hub_upload.json").read_text())["repo"] == "me/vqa-test"
