"""The same command finishes the job: transient failures are retried by a rerun, rejections
are kept, a reshard asks nothing again, and a crash leaves its traceback in the job log."""

from __future__ import annotations

import pytest

from chat_server import OVERFLOW, ChatServer
from workflow_helpers import read_output, snakemake, tagged_records, write_config, write_records

pytestmark = pytest.mark.workflow


def test_rerun_retries_transient_failures_keeps_rejections_then_does_nothing(workdir):
    records = tagged_records(workdir, 12)
    records[5]["conversation"][0]["value"] += f" {OVERFLOW}"  # rejected for good (400)
    write_records(workdir, records)
    with ChatServer(faults={"500": 0.5}, seed=1) as server:
        write_config(workdir, server.base_url, max_failed_fraction=0.1, api={"max_retries": 0})
        first = snakemake(workdir, check=False)
        assert first.returncode != 0, "more than max_failed_fraction failed"
        failed = read_output(workdir, "failed.jsonl")
        transient = {f["id"] for f in failed if f["transient"]}
        assert transient and {"r005"} == {f["id"] for f in failed if not f["transient"]}
        assert "run the same command again" in first.stderr
        answered_first = dict(server.stats["answered"])

        server.faults["500"] = 0.0  # the endpoint recovers
        snakemake(workdir)
        dataset = read_output(workdir, "dataset.jsonl")
        assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(12) if n != 5]
        (rejected,) = read_output(workdir, "failed.jsonl")
        assert rejected["id"] == "r005" and rejected["kind"] == "rejected" and not rejected["transient"]
        retried = {tag for tag, count in server.stats["answered"].items() if count > answered_first.get(tag, 0)}
        assert retried == {f"rec-{r[1:].lstrip('0') or '0'}" for r in transient}, "only failed records asked"
        assert server.stats["answered"].keys() - answered_first.keys() <= retried
        assert all(count == 1 for count in server.stats["answered"].values())
        overflow_requests = server.stats["statuses"]["400"]
        assert overflow_requests == 1, "a rejection is not asked again"

        requests = server.stats["requests"]
        third = snakemake(workdir)
        assert "Nothing to be done" in third.stdout + third.stderr
        assert server.stats["requests"] == requests


def test_changing_shard_size_asks_nothing_again(workdir):
    write_records(workdir, tagged_records(workdir, 12))
    with ChatServer() as server:
        write_config(workdir, server.base_url, shard_size=5)
        snakemake(workdir)
        requests = server.stats["requests"]
        write_config(workdir, server.base_url, shard_size=3)
        result = snakemake(workdir)
        assert server.stats["requests"] == requests, "a reshard re-asked answered records"
        assert "12 stored, 0 to ask" not in result.stderr  # per shard: 3 stored each
        dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(12)]
    assert len(list((workdir / "results/test/shards").iterdir())) == 4


def test_a_crash_leaves_its_traceback_in_the_job_log(workdir, server):
    write_records(workdir, tagged_records(workdir, 2))
    write_config(workdir, server.base_url)
    (workdir / "results/test/journal/shard-00000.jsonl").mkdir(parents=True)  # unwritable journal
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    log = (workdir / "results/test/logs/generate_api/shard-00000.log").read_text()
    assert "Traceback (most recent call last)" in log and "IsADirectoryError" in log
    assert "IsADirectoryError" in result.stderr, "the terminal names the error too"
