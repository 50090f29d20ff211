"""Progress lines: their format, their timing, and the retries the API backend tells the loop."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import pytest

from chat_server import ChatServer
from vqaflow.backends.api import ApiBackend
from vqaflow.progress import Counts, Progress, progress_line
from vqaflow.requests import Request, ShardRequests
from workflow_helpers import api_settings_for, sampling, text_tasks

FAULTS = ("429", "500", "drop", "empty")


def test_a_running_line_says_done_answered_failed_retried_rate_and_eta():
    counts = Counts(answered=17, failed=1, retried=Counter({"rate_limited": 2, "server_error": 1}))
    assert progress_line("shard-00000 generate", counts, 40, 9.3) == (
        "shard-00000 generate: 18/40 done, 17 answered, 1 failed, 3 retried (rate_limited 2, server_error 1), "
        "1.94 req/s, 00:09 elapsed, ETA 00:11"
    )


def test_a_line_before_any_answer_has_no_rate_and_no_eta():
    assert progress_line("shard-00003 verify", Counts(), 12, 4.0) == (
        "shard-00003 verify: 0/12 done, 0 answered, 0 failed, 0 retried, ? req/s, 00:04 elapsed, ETA ?"
    )


def test_the_last_line_says_how_the_stage_ended_and_how_long_it_took():
    counts = Counts(answered=3990, failed=10, retried=Counter({"timeout": 4}))
    assert progress_line("shard-00001 generate", counts, 4000, 3725.0, "finished") == (
        "shard-00001 generate: finished 4000/4000, 3990 answered, 10 failed, 4 retried (timeout 4), "
        "1.07 req/s, in 1:02:05"
    )
    assert progress_line("shard-00001 repair", Counts(answered=2), 5, 1.0, "stopped at") == (
        "shard-00001 repair: stopped at 2/5, 2 answered, 0 failed, 0 retried, 2.00 req/s, in 00:01"
    )


def test_lines_come_while_it_runs_with_rising_counts_then_one_last_line():
    lines: list[str] = []
    with Progress("shard-00000 generate", 20, lines.append, first_s=0.05, every_s=0.1) as progress:
        for n in range(20):
            time.sleep(0.03)
            progress.outcome(ok=n % 5 != 0)
            if n % 7 == 0:
                progress.retry("rate_limited")
    running, last = lines[:-1], lines[-1]
    done = [int(re.search(r": (\d+)/20 done", line).group(1)) for line in running]
    assert len(done) >= 3 and done == sorted(done) and done[0] < done[-1] < 20, lines
    assert last.startswith("shard-00000 generate: finished 20/20, 16 answered, 4 failed, 3 retried (rate_limited 3)")


def test_while_nothing_moves_the_gaps_double():
    stamps: list[float] = []
    with Progress("shard-00000 generate", 5, lambda line: stamps.append(time.monotonic()),
                  first_s=0.1, every_s=0.1, quiet_max_s=0.4):
        time.sleep(1.6)
    gaps = [round(b - a, 2) for a, b in zip(stamps, stamps[1:-1])]  # the last line comes at the end
    assert gaps[:4] == pytest.approx([0.1, 0.2, 0.4, 0.4], abs=0.05), gaps


def test_a_stage_stopped_by_an_error_says_so():
    lines: list[str] = []
    with pytest.raises(RuntimeError):
        with Progress("shard-00000 generate", 5, lines.append) as progress:
            progress.outcome(ok=True)
            raise RuntimeError("fatal")
    assert lines == [lines[-1]] and lines[-1].startswith("shard-00000 generate: stopped at 1/5, 1 answered")


def test_the_api_backend_tells_every_attempt_it_makes_again(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    told: list[str] = []
    lock = threading.Lock()

    def on_retry(kind: str) -> None:
        with lock:
            told.append(kind)

    outcomes = []
    with ChatServer(faults={"429": 0.15, "500": 0.1, "drop": 0.05, "empty": 0.05}, retry_after=0.01, seed=1) as server:
        backend = ApiBackend(api_settings_for(server.base_url, max_concurrency=4, max_retries=12,
                                              max_empty_retries=12),
                             sampling(max_tokens=64), max_pixels=1 << 20)
        backend.run(text_tasks(40), outcomes.append, on_retry)
        statuses = server.stats["statuses"]
    assert all(o.ok for o in outcomes) and len(outcomes) == 40
    assert all(statuses[fault] for fault in FAULTS), statuses
    assert Counter(told) == {"rate_limited": statuses["429"], "server_error": statuses["500"],
                             "connection": statuses["drop"], "empty_answer": statuses["empty"]}
    assert len(told) == sum(o.generation["attempts"] - 1 for o in outcomes)


def test_the_shard_loop_counts_the_backends_retries_into_its_last_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    tasks = text_tasks(30)
    with ChatServer(faults={"429": 0.2}, retry_after=0.01, seed=2) as server:
        backend = ApiBackend(api_settings_for(server.base_url, max_concurrency=4, max_retries=12),
                             sampling(max_tokens=64), max_pixels=1 << 20)
        requests = ShardRequests(tmp_path / "shard-00004.jsonl", {t.id: n for n, t in enumerate(tasks)}, False)
        answers, failures = requests.run(backend, {t.id: Request(t, t.id) for t in tasks}, "generate")
        limited = server.stats["statuses"]["429"]
    assert len(answers) == 30 and not failures and limited
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"shard-00004 generate: finished 30/30, 30 answered, 0 failed, {limited} retried "
                           f"(rate_limited {limited}), "), last
