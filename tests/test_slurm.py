"""The workflow through `--profile profiles/slurm` on a real single-node SLURM cluster.

CI starts the cluster with `.ci/slurm/start-cluster.sh`; jobs run on this machine, so they
reach the test server on 127.0.0.1. The cluster has no accounting, hence `squeue` for status.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from chat_server import ChatServer
from test_workflow_api import tagged_records
from workflow_helpers import REPO, read_output, snakemake, write_config, write_records

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(shutil.which("sinfo") is None, reason="no SLURM here (CI starts one)"),
]

SLURM_ARGS = (
    "--profile", str(REPO / "profiles/slurm"), "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "2", "--verbose",
)


def sbatch_calls(output: str) -> dict[str, str]:
    """The plugin's sbatch command per rule (from its verbose log)."""
    calls = re.findall(r"sbatch call: (sbatch .*?--comment (rule_\S+).*)", output)
    return {comment: call for call, comment in calls}


def test_workflow_runs_on_slurm(workdir):
    secret = "sk-slurm-test-5ecret-0123456789"
    with ChatServer(key=secret) as server:
        write_records(workdir, tagged_records(workdir, 8))
        write_config(workdir, server.base_url, shard_size=4)
        result = snakemake(workdir, *SLURM_ARGS, key=secret, timeout=600)
        answered = server.stats["answered"]
    output = result.stdout + result.stderr

    calls = sbatch_calls(output)
    assert "rule_generate_api_wildcards_shard-00000" in calls
    assert "rule_merge_dataset" in calls
    api_call = calls["rule_generate_api_wildcards_shard-00000"]
    assert "--gpus" not in api_call and "--gres" not in api_call
    assert "--cpus-per-task=2" in api_call

    job_ids = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", output)
    assert len(job_ids) >= 6, output[-3000:]
    shown = subprocess.run(["scontrol", "show", "job", job_ids[-1]], capture_output=True, text=True)
    assert shown.returncode == 0 and "JobState=COMPLETED" in shown.stdout, shown.stdout + shown.stderr

    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(8)]
    assert all(r["context_vqa"]["qas"] for r in dataset)
    assert set(answered.values()) == {1}

    assert secret not in output and secret not in shown.stdout
    assert not [p for p in workdir.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.vllm
def test_vllm_rule_is_submitted_with_a_gpu(workdir, tiny_model):
    from test_workflow_vllm import ENGINE_ENV, vllm_config

    write_records(workdir, tagged_records(workdir, 2))
    vllm_config(workdir, tiny_model)
    # the profile's 8 CPUs per GPU do not fit this 2-CPU node
    fit = ("--set-resources", "generate_vllm:cpus_per_gpu=1")
    result = snakemake(workdir, *SLURM_ARGS, *fit, key=None, env=ENGINE_ENV, timeout=900)
    calls = sbatch_calls(result.stdout + result.stderr)
    vllm_call = calls["rule_generate_vllm_wildcards_shard-00000"]
    assert "--gpus=1" in vllm_call and "--cpus-per-gpu=1" in vllm_call
    assert "--gpus" not in calls["rule_merge_dataset"]
    assert [r["id"] for r in read_output(workdir, "dataset.jsonl")] == ["r000", "r001"]
