"""backend: batch through `snakemake`, as a hostile user would run it: killed with batches in
flight, then a changed shard_size, deleted or corrupt state files, a torn output file.
Every record once in the dataset, none answered twice, nothing stuck."""

from __future__ import annotations

from collections import Counter

import pytest

from chat_server import ChatServer
from workflow_helpers import (
    killed_when,
    read_output,
    snakemake,
    tagged_records,
    write_config,
    write_records,
)

pytestmark = pytest.mark.workflow
FAST = {"poll_s": 0.05, "max_poll_s": 0.1}


def killed_with_batches_in_flight(workdir, server: ChatServer, batches: int) -> None:
    """Run the workflow until ``batches`` batches exist and are being polled, then SIGKILL it
    (the whole process group, as a lost node or an impatient user would)."""
    server.batch["retrieves_per_step"] = 10**6  # the batches stay validating
    killed_when(workdir, lambda: server.batch_stats["batches_created"] >= batches
                and server.batch_stats["retrieves"] >= 2 * batches)
    server.batch["retrieves_per_step"] = 1
    snakemake(workdir, "--unlock")


def every_record_once(workdir, server: ChatServer, count: int) -> None:
    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(count)]
    assert dict(server.stats["answered"]) == {f"rec-{n}": 1 for n in range(count)}, "a line was paid twice"
    assert server.stats["requests"] == 0


def test_killed_in_flight_then_shard_size_changed(workdir):
    with ChatServer() as server:
        write_records(workdir, tagged_records(workdir, 12))
        write_config(workdir, server.base_url, backend="batch", shard_size=4, batch=FAST)
        killed_with_batches_in_flight(workdir, server, 3)
        write_config(workdir, server.base_url, backend="batch", shard_size=6, batch=FAST)
        snakemake(workdir, "--rerun-incomplete")
        assert server.batch_stats["batches_created"] == 3, "the new shards re-attached"
        every_record_once(workdir, server, 12)
        assert not [f for f in server.files.values() if f["meta"]["purpose"] == "batch"], "inputs deleted"


def test_killed_then_state_files_deleted_or_corrupt(workdir):
    with ChatServer() as server:
        write_records(workdir, tagged_records(workdir, 9))
        write_config(workdir, server.base_url, backend="batch", shard_size=3, batch=FAST)
        killed_with_batches_in_flight(workdir, server, 3)
        states = workdir / "results/test/batches"
        (states / "shard-00000.json").unlink()
        (states / "shard-00001.json").unlink()
        (states / "shard-00002.json").write_text('{"version": 2, "batches": [{"id": "batch_')
        # one job at a time: each shard lists after the one before recorded what it found,
        # so the second reads the first's "none of my lines" entries (issue 21) every time
        result = snakemake(workdir, "--rerun-incomplete", "--cores", "1")
        assert server.batch_stats["batches_created"] == 3, "found again in the listing"
        every_record_once(workdir, server, 9)
    assert "results/test/batches/shard-00002.json cannot be read" in result.stderr and "set aside" in result.stderr
    assert (states / "shard-00002.json.corrupt").exists()


def test_torn_output_line_is_asked_again_and_nothing_after(workdir):
    with ChatServer() as server:
        server.batch.update({"torn_lines": 1, "faulty_batches": 1})
        write_records(workdir, tagged_records(workdir, 6))
        write_config(workdir, server.base_url, backend="batch", shard_size=3, batch=FAST)
        snakemake(workdir)
        assert sorted(server.batch_stats["lines_per_batch"]) == [1, 3, 3]
        assert sorted(Counter(server.stats["answered"]).values()) == [1, 1, 1, 1, 1, 2]
        assert [r["id"] for r in read_output(workdir, "dataset.jsonl")] == [f"r{n:03d}" for n in range(6)]
        rerun = snakemake(workdir)
        assert "Nothing to be done" in rerun.stdout + rerun.stderr
        assert server.batch_stats["batches_created"] == 3
