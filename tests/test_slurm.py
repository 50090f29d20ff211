"""The workflow through `--profile profiles/slurm` on a real single-node SLURM cluster.

CI brings the cluster up with `bash .ci/slurm/install.sh` (as root); jobs run on this
machine, so they reach the test server on 127.0.0.1. The cluster has no accounting
database, hence `--slurm-status-command squeue` on top of the profile.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from chat_server import ChatServer
from workflow_helpers import (
    ENGINE_ENV,
    REPO,
    read_output,
    snakemake,
    tagged_records,
    vllm_config,
    write_config,
    write_records,
)

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(shutil.which("sinfo") is None, reason="no SLURM client here (CI installs one)"),
]

PROFILE = REPO / "profiles" / "slurm"
# What only this test cluster needs on top of the profile: no accounting (squeue for status),
# quick first status check, and the plugin's sbatch calls in the log.
# A group job asks for as many CPUs as --cores lets it run jobs at once: 2 on this node.
SLURM_ARGS = (
    "--profile", str(PROFILE), "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "2", "--verbose", "--cores", "2",
)


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    """SLURM's configuration, once a node is up; fails (does not skip) when none is."""
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if not re.search(r"^(idle|mixed|allocated)", states.stdout, re.M):
        pytest.fail(
            "SLURM is installed but no node is up (sinfo: "
            f"{(states.stdout + states.stderr).strip()!r}); start the test cluster with "
            "`bash .ci/slurm/install.sh` as root"
        )
    shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    return dict(re.findall(r"^(\w+)\s+= (.*)$", shown.stdout, re.M))


def profile_api_slots() -> int:
    entries = yaml.safe_load((PROFILE / "config.yaml").read_text())["resources"]
    return int(next(e.split("=")[1] for e in entries if e.startswith("api_slots=")))


def sbatch_calls(output: str) -> dict[str, str]:
    """The plugin's sbatch command per job comment (rule and wildcards), from its verbose log."""
    calls = re.findall(r"sbatch call: (sbatch .*?--comment (rule_\S+).*)", output)
    return {comment: call for call, comment in calls}


def submitted_job_ids(output: str) -> list[str]:
    return re.findall(r"Job \S+ has been submitted with SLURM jobid (\d+)", output)  # a group job: its uuid


def show_job(job_id: str) -> dict[str, str]:
    """`scontrol show job -o` as a dict (SLURM keeps finished jobs for MinJobAge = 300 s)."""
    shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    # values may contain spaces (Command=...), keys are CamelCase words followed by '='
    fields = re.findall(r"(\w[\w:/]*)=(.*?)(?= +\w[\w:/]*=|$)", shown.stdout.strip())
    return {key: value.strip() for key, value in fields}


def time_of(value: str) -> datetime:
    return datetime.fromisoformat(value)


def files_under(*roots: str | Path) -> list[Path]:
    found = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found += [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return found


def test_workflow_runs_on_slurm(workdir, cluster):
    secret = f"sk-vqaflow-{secrets.token_hex(16)}"  # new each run: older SLURM state cannot match
    slots = profile_api_slots()
    with ChatServer(key=secret) as server:
        write_records(workdir, tagged_records(workdir, 12))
        # Each API job asks for min(max_concurrency, max_total_concurrency) api_slots; asking
        # for all of the profile's cap, the three API jobs must run one after another.
        write_config(workdir, server.base_url, shard_size=4, api={"max_concurrency": slots})
        result = snakemake(workdir, *SLURM_ARGS, key=secret, timeout=600)
        answered = server.stats_snapshot()["answered"]
    output = result.stdout + result.stderr

    # the dataset: every record once, in input order, answered exactly once by the server
    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(12)]
    assert all(r["context_vqa"]["qas"] for r in dataset)
    assert answered == {f"rec-{n}": 1 for n in range(12)}

    # every job went through sbatch, and SLURM ran it to completion in this directory
    calls = sbatch_calls(output)
    shards = [f"shard-{n:05d}" for n in range(3)]
    for shard in shards:
        assert f"rule_generate_api_wildcards_{shard}" in calls, sorted(calls)
    # fewer, fuller jobs: the three refine_answers jobs ran as one group job (the profile's
    # group-components), two at a time on the --cores 2 it was given
    assert [comment for comment in calls if "refine" in comment] == ["rule_refine_refine_answers"], sorted(calls)
    assert "--cpus-per-task=2" in calls["rule_refine_refine_answers"]
    assert "rule_merge_dataset" in calls, sorted(calls)
    job_ids = submitted_job_ids(output)
    assert len(job_ids) == len(calls) >= 8, output[-3000:]
    jobs = {job_id: show_job(job_id) for job_id in job_ids}
    for job_id, job in jobs.items():
        assert job["JobState"] == "COMPLETED", (job_id, job)
        assert Path(job["WorkDir"]) == workdir
        assert job["Comment"] in calls

    # API jobs: a few CPUs, no GPU, and never two at once (the profile's api_slots cap)
    api_calls = [call for comment, call in calls.items() if comment.startswith("rule_generate_api")]
    assert len(api_calls) == 3
    for call in api_calls:
        assert "--gpus" not in call and "--gres" not in call
        assert "--cpus-per-task=2" in call and re.search(r"--mem[ =]2000\b", call), call
    api_jobs = sorted(
        (j for j in jobs.values() if j["Comment"].startswith("rule_generate_api")),
        key=lambda j: time_of(j["StartTime"]),
    )
    for before, after in zip(api_jobs, api_jobs[1:]):
        assert time_of(after["StartTime"]) >= time_of(before["EndTime"]), (before, after)

    # the key: only in the environment of the submitting process and of the jobs
    assert_secret_is_nowhere(secret, workdir, output, job_ids, cluster)


def test_progress_lines_reach_the_slurm_job_log(workdir, cluster):
    """A cluster job's stderr is its log: the progress lines a local run shows on the terminal
    are there, while the job runs and when it ends (and the key is not)."""
    secret = f"sk-vqaflow-{secrets.token_hex(16)}"
    with ChatServer(key=secret, latency=1.0) as server:
        write_records(workdir, tagged_records(workdir, 8))
        write_config(workdir, server.base_url, shard_size=8, api={"max_concurrency": 1})
        # only the generate job (and the split before it); no --verbose: the job step would log its environment
        snakemake(workdir, "results/test/generated/shard-00000.jsonl", "--profile", str(PROFILE),
                  "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                  "--slurm-keep-successful-logs", key=secret, timeout=600)
    (log,) = (workdir / ".snakemake/slurm_logs/rule_generate_api/shard-00000").glob("*.log")
    text = log.read_text()
    running = re.findall(r"^vqaflow: shard-00000 generate: (\d+)/8 done, .* ETA [\d:?]+$", text, re.M)
    assert running and all(0 < int(n) < 8 for n in running), text
    assert re.search(r"^vqaflow: shard-00000 generate: finished 8/8, 8 answered, 0 failed, 0 retried, ", text, re.M)
    assert secret not in text


def assert_secret_is_nowhere(secret: str, workdir: Path, output: str, job_ids: list[str], cluster):
    """Not in snakemake's output, the sbatch calls, `scontrol show job`, the job scripts, any
    file under the working directory (.snakemake, slurm_logs, results) or SLURM's logs and
    spool; only in the job environments SLURM's controller saves (root-only files)."""
    texts = {"snakemake output": output}
    for job_id in job_ids:
        for what in (["show", "job", "-dd", job_id], ["write", "batch_script", job_id, "-"]):
            shown = subprocess.run(["scontrol", *what], capture_output=True, text=True)
            texts[f"scontrol {' '.join(what)}"] = shown.stdout + shown.stderr
    assert "#!/bin/sh" in texts[f"scontrol write batch_script {job_ids[0]} -"]
    leaks = [name for name, text in texts.items() if secret in text]

    state = Path(cluster.get("StateSaveLocation", "/var/spool/slurmctld"))
    spool = cluster.get("SlurmdSpoolDir", "/var/spool/slurmd")
    logs = [cluster.get(k, "") for k in ("SlurmctldLogFile", "SlurmdLogFile")]
    saved_environments = []
    for path in files_under(workdir, state, spool, *logs, *{str(Path(p).parent) for p in logs if p}):
        if not os.access(path, os.R_OK) or secret.encode() not in path.read_bytes():
            continue
        if path.name == "environment" and state in path.parents:
            saved_environments.append(path)  # sbatch --export=ALL: SLURM keeps the job's env
        else:
            leaks.append(str(path))
    assert not leaks, f"the API key leaked into {leaks}"
    for path in saved_environments:  # readable by SLURM's user (root here) only
        assert not path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO), oct(path.stat().st_mode)
    if os.geteuid() == 0:  # the controller saved every job's environment, our key included
        assert saved_environments


@pytest.mark.vllm
def test_vllm_rule_is_submitted_with_a_gpu(workdir, cluster, tiny_model):

    write_records(workdir, tagged_records(workdir, 2))
    vllm_config(workdir, tiny_model)
    # the profile's 8 CPUs per GPU do not fit this 2-CPU node
    fit = ("--set-resources", "generate_vllm:cpus_per_gpu=1")
    result = snakemake(workdir, *SLURM_ARGS, *fit, key=None, env=ENGINE_ENV, timeout=900)
    calls = sbatch_calls(result.stdout + result.stderr)
    vllm_call = calls["rule_generate_vllm_wildcards_shard-00000"]
    assert "--gpus=1" in vllm_call and "--cpus-per-gpu=1" in vllm_call
    assert "--gpus" not in calls["rule_merge_dataset"]
    job_ids = submitted_job_ids(result.stdout + result.stderr)
    gpu_jobs = [j for j in map(show_job, job_ids) if j["Comment"].startswith("rule_generate_vllm")]
    assert gpu_jobs and all("gpu" in j.get("TresPerJob", "") for j in gpu_jobs), gpu_jobs
    assert [r["id"] for r in read_output(workdir, "dataset.jsonl")] == ["r000", "r001"]
