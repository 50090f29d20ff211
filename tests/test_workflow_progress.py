"""Progress on the terminal: a shard's lines reach snakemake's stderr while the shard runs."""

from __future__ import annotations

import re

import pytest

from chat_server import ChatServer
from workflow_helpers import read_output, snakemake, tagged_records, write_config, write_records

pytestmark = pytest.mark.workflow

RUNNING = re.compile(r"^vqaflow: shard-00000 generate: (\d+)/40 done, (\d+) answered, (\d+) failed, (\d+) retried"
                     r".*, [\d.]+ req/s, \d\d:\d\d elapsed, ETA [\d:]+$")
LAST = re.compile(r"^vqaflow: shard-00000 generate: finished 40/40, 40 answered, 0 failed, (\d+) retried"
                  r"(?: \((.*)\))?, [\d.]+ req/s, in \d\d:\d\d$")


def test_a_slow_shard_shows_rising_progress_lines_and_its_retries_on_the_terminal(workdir):
    with ChatServer(latency=1.0, faults={"429": 0.1, "500": 0.05}) as server:
        write_records(workdir, tagged_records(workdir, 40))
        write_config(workdir, server.base_url, shard_size=40, api={"max_concurrency": 2, "max_retries": 10})
        result = snakemake(workdir)
        statuses = server.stats["statuses"]
    assert len(read_output(workdir, "dataset.jsonl")) == 40

    lines = result.stderr.splitlines()
    ends = [n for n, line in enumerate(lines) if LAST.match(line)]
    assert len(ends) == 1, "\n".join(line for line in lines if "shard-00000" in line)
    running = [RUNNING.match(line) for line in lines[:ends[0]]]
    done = [int(match.group(1)) for match in running if match]
    assert len(done) >= 2 and done == sorted(done) and 0 < done[0] < done[-1] < 40, done

    retried, kinds = LAST.match(lines[ends[0]]).groups()
    assert statuses["429"] and int(retried) == statuses["429"] + statuses["500"], (retried, statuses)
    told = dict((name, int(n)) for name, n in (kind.split() for kind in kinds.split(", ")))
    assert told == {name: statuses[status] for name, status in (("rate_limited", "429"), ("server_error", "500"))
                    if statuses[status]}
