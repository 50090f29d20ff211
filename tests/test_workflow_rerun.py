"""The same command finishes the job: transient failures are retried by a rerun, rejections
are kept, a reshard asks nothing again, and a crash leaves its traceback in the job log."""

from __future__ import annotations

import socket
import time

import pytest

from chat_server import OVERFLOW, ChatServer
from workflow_helpers import png_header_only, read_output, snakemake, tagged_records, write_config, write_records

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


def test_a_bomb_and_html_answers_fail_or_retry_alone(workdir):
    records = tagged_records(workdir, 20)
    records[7]["image"] = [png_header_only(workdir / "images" / "bomb.png", 20000, 20000)]
    write_records(workdir, records)
    with ChatServer(faults={"html": 0.15, "error_body": 0.05}, seed=2) as server:
        write_config(workdir, server.base_url, shard_size=10)
        snakemake(workdir)
        assert server.stats["statuses"]["html"] > 0
    (failed,) = read_output(workdir, "failed.jsonl")
    assert failed["id"] == "r007" and failed["kind"] == "image" and "400,000,000 pixels" in failed["error"]
    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(20) if n != 7]


def test_a_closed_port_stops_the_run_in_seconds_naming_the_url(workdir):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_records(workdir, tagged_records(workdir, 4))
    url = f"http://127.0.0.1:{port}/v1"
    write_config(workdir, url)
    started = time.monotonic()
    result = snakemake(workdir, check=False)
    assert result.returncode != 0 and time.monotonic() - started < 60
    assert url in result.stderr
