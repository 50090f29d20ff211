"""The whole workflow, run by `snakemake` in a subprocess against the local chat server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import polars as pl
import pytest

from chat_server import ChatServer
from workflow_helpers import (
    REPO,
    image_names,
    job_environment,
    read_output,
    snakemake,
    tagged_records,
    write_config,
    write_records,
)

pytestmark = pytest.mark.workflow

GENERATION_FIELDS = {
    "backend", "model", "finish_reason", "prompt_tokens", "completion_tokens", "latency_s", "attempts",
}


def test_twelve_records_three_shards_in_parallel_merged_in_order(workdir):
    with ChatServer(latency=1.0) as server:  # each job asks for a second: long enough to overlap
        write_records(workdir, tagged_records(workdir, 12))
        write_config(workdir, server.base_url, api={"max_concurrency": 4})
        snakemake(workdir)

        shards = sorted((workdir / "results/test/shards").iterdir())
        assert [p.name for p in shards] == ["shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl"]
        assert server.stats["max_in_flight"] > 4, "the three generate jobs should overlap"

        dataset = read_output(workdir, "dataset.jsonl")
        assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(12)]
        first = dataset[0]
        assert first["code"] == "007"
        assert first["image"] == ["images/" + image_names(workdir)[0]]
        assert "rec-0" in first["vqa"]
        assert "rec-0 was recorded with 1 image(s)" in first["context_vqa"]["context"]
        assert first["context_vqa"]["qas"] == [
            {"question": "How many images does rec-0 have?", "answer": "1", "flags": []},
            {"question": "Which seed produced rec-0?", "answer": first["vqa"].split("seed ")[1].split(".")[0],
             "flags": []},
        ]
        assert set(first["generation"]) >= GENERATION_FIELDS
        assert first["generation"]["model"] == "test-vlm"
        assert first["parse"]["status"] == "ok"

        stats = read_output(workdir, "stats.json")
        assert stats["records_in"] == stats["records_ok"] == 12
        assert stats["records_failed"] == 0 and stats["qa_pairs"] == 24
        assert read_output(workdir, "failed.jsonl") == []

        requests = server.stats["requests"]
        rerun = snakemake(workdir)
        assert "Nothing to be done" in rerun.stdout + rerun.stderr
        assert server.stats["requests"] == requests


@pytest.mark.parametrize("pipeline", ["image_vqa", "image_qa"])
def test_qa_pipelines_use_default_prompts(workdir, server, pipeline):
    names = image_names(workdir)
    records = [{"image": f"images/{name}"} for name in names]  # no conversation, no id
    write_records(workdir, records)
    write_config(workdir, server.base_url, pipeline=pipeline)
    snakemake(workdir)
    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["image"] for r in dataset] == [f"images/{name}" for name in names]
    assert [r["id"] for r in dataset] == [f"row-{n}" for n in range(len(names))]
    for record in dataset:
        assert "context_vqa" not in record
        assert [qa["answer"] for qa in record["qas"]][0] == "1"
        assert record["parse"]["status"] == "ok"


@pytest.mark.parametrize(
    ("input_name", "output_format"),
    [("records.json", "parquet"), ("records.parquet", "json"), ("records.jsonl", "json")],
)
def test_input_and_output_formats(workdir, server, input_name, output_format):
    records = tagged_records(workdir, 5)
    if input_name.endswith(".parquet"):
        pl.DataFrame(records).write_parquet(workdir / input_name)
    else:
        write_records(workdir, records, input_name)
    write_config(workdir, server.base_url, input=input_name, output_format=output_format)
    snakemake(workdir)
    dataset = read_output(workdir, f"dataset.{output_format}")
    assert [r["id"] for r in dataset] == [r["id"] for r in records]
    assert all(r["code"] == "007" for r in dataset)
    assert all(len(r["context_vqa"]["qas"]) == 2 for r in dataset)


def test_dataflow_mm_sample_runs_unchanged_with_df_api_key(tmp_path, server):
    workdir = tmp_path / "dfmm"
    shutil.copytree(REPO / "demo", workdir / "demo")
    samples = json.loads((workdir / "demo/sample_data.json").read_text())
    write_config(workdir, server.base_url, input="demo/sample_data.json", output_format="json")
    snakemake(workdir, key=None, env={"DF_API_KEY": "test-key"})
    dataset = read_output(workdir, "dataset.json")
    assert len(dataset) == len(samples)
    for sample, record in zip(samples, dataset):
        assert {k: record[k] for k in sample} == sample
        assert record["vqa"]
        assert record["context_vqa"]["context"]
        assert record["context_vqa"]["qas"]
    multi = next(r for r in dataset if isinstance(r["image"], list) and len(r["image"]) > 1)
    assert f"{len(multi['image'])} image(s)" in multi["vqa"]


def test_demo_config_dry_run_without_key():
    result = snakemake(REPO, "-n", configfile=REPO / "config/config.yaml", key=None, check=False)
    assert result.returncode == 0, result.stderr


def test_missing_key_stops_before_any_job(workdir, server):
    write_records(workdir, tagged_records(workdir, 2))
    write_config(workdir, server.base_url)
    result = snakemake(workdir, key=None, check=False)
    assert result.returncode != 0
    assert "set the environment variable OPENAI_API_KEY" in result.stderr
    written = {path.relative_to(workdir / "results/test").parts[0] for path in (workdir / "results").rglob("*")
               if path.is_file()}
    assert written <= {"manifest"}, "no job ran (the plan's manifest, written at parse, is all)"
    assert server.stats["requests"] == 0


def test_unknown_config_key_is_named(workdir, server):
    write_records(workdir, tagged_records(workdir, 2))
    write_config(workdir, server.base_url, api={"max_concurency": 4})
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert "max_concurency" in result.stderr


def test_workflow_runs_as_a_snakemake_module(workdir, server):
    write_records(workdir, tagged_records(workdir, 3))
    write_config(workdir, server.base_url, run="as_module")
    (workdir / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\n'
        f'module vqaflow:\n    snakefile:\n        "{REPO / "Snakefile"}"\n    config:\n        config\n\n\n'
        "use rule * from vqaflow as vqaflow_*\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2"], cwd=workdir, capture_output=True, text=True,
        env=job_environment(), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["id"] for r in read_output(workdir, "dataset.jsonl", run="as_module")] == ["r000", "r001", "r002"]
