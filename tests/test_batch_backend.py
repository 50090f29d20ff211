"""The Batch API backend with the real `openai` client against the local chat server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chat_server import ChatServer
from vqaflow.backends.api import ApiBackend
from vqaflow.backends.base import FatalBackendError, GenerationTask, Outcome
from vqaflow.backends.batch import BatchBackend, BatchSettings
from workflow_helpers import (
    api_settings_for,
    image_names,
    read_output,
    sampling,
    snakemake,
    text_tasks,
    write_config,
    write_records,
)

TESTS = Path(__file__).resolve().parent
FAST = {"poll_s": 0.01, "max_poll_s": 0.05, "fallback": "none", "max_requests": 50_000,
        "max_file_mb": 190, "completion_window": "24h", "discount": 0.5, "keep_files": False}


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def backend(server: ChatServer, state: Path, api: dict | None = None, online=None, **batch) -> BatchBackend:
    settings = api_settings_for(server.base_url, **(api or {}))
    online = online or ApiBackend(settings, sampling(max_tokens=64), 1 << 20)
    return BatchBackend(settings, BatchSettings(**{**FAST, **batch}), sampling(max_tokens=64), 1 << 20, state, online)


def collect(run_backend, work: list[GenerationTask]) -> dict:
    outcomes = {}

    def record(outcome):
        assert outcome.id not in outcomes, "each task is reported once"
        outcomes[outcome.id] = outcome

    run_backend.run(work, record)
    assert sorted(outcomes) == sorted(t.id for t in work), "every task is reported"
    return outcomes


def demo_image() -> str:
    return str(min((TESTS.parent / "demo" / "images").iterdir()))


def test_full_run_answers_as_online(tmp_path):
    work = text_tasks(6, images=(demo_image(),))
    with ChatServer(script={"rec-2": "A scripted answer."}) as server:
        batch = collect(backend(server, tmp_path / "state.json"), work)
        stats = dict(server.batch_stats)
        online = collect(ApiBackend(api_settings_for(server.base_url), sampling(max_tokens=64), 1 << 20), work)
    assert stats["batches_created"] == 1 and stats["files_uploaded"] == 1
    assert stats["lines_per_batch"] == [6]
    assert batch["r2"].answer == "A scripted answer."
    state = json.loads((tmp_path / "state.json").read_text())
    assert [b["id"] for b in state["batches"]] == ["batch_1"]
    for task in work:
        b, o = batch[task.id], online[task.id]
        assert b.ok and b.answer == o.answer
        assert b.generation["backend"] == "batch" and b.generation["batch_id"] == "batch_1"
        assert b.generation["latency_s"] >= 0
        drop = ("backend", "batch_id", "latency_s")
        assert {k: v for k, v in b.generation.items() if k not in drop} == \
               {k: v for k, v in o.generation.items() if k not in drop}


def test_identity_is_the_online_identity(tmp_path):
    with ChatServer() as server:
        batch = backend(server, tmp_path / "state.json")
        online = ApiBackend(api_settings_for(server.base_url), sampling(max_tokens=64), 1 << 20)
        assert batch.identity() == online.identity()


def test_polling_backs_off_up_to_the_cap(tmp_path):
    sleeps = []
    with ChatServer() as server:
        server.batch["retrieves_per_step"] = 4
        run = backend(server, tmp_path / "state.json", poll_s=1.0, max_poll_s=2.0)
        run.sleep = sleeps.append
        collect(run, text_tasks(2))
    assert sleeps[:4] == [1.0, 1.5, 2.0, 2.0]


CHILD = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[5]]
from vqaflow.backends.api import ApiSettings
from vqaflow.backends.base import GenerationTask
from workflow_helpers import sampling, settings_from_defaults
from vqaflow.backends.api import ApiBackend
from vqaflow.backends.batch import BatchBackend, BatchSettings
from vqaflow.prompts import Prompt
base_url, state, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
work = [GenerationTask(f"r{n}", Prompt(None, (("user", f"Describe rec-{n}."),), ()), seed=n) for n in range(count)]
settings = BatchSettings(poll_s=0.05, max_poll_s=0.05, fallback="none", max_requests=50000,
                         max_file_mb=190, completion_window="24h", discount=0.5, keep_files=False)
api = settings_from_defaults(ApiSettings, "api", model="test-vlm", base_url=base_url)
backend = BatchBackend(api, settings, sampling(max_tokens=64), 1 << 20, state, ApiBackend(api, sampling(max_tokens=64), 1 << 20))
backend.run(work, lambda outcome: print(json.dumps(outcome.id), flush=True))
"""


def test_killed_while_polling_reattaches_without_a_second_batch(tmp_path):
    state = tmp_path / "batches" / "shard-000.json"
    work = text_tasks(5)
    with ChatServer() as server:
        server.batch["retrieves_per_step"] = 10**6  # stays validating while the child polls
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(TESTS.parent / "scripts"), server.base_url, str(state), "5", str(TESTS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
        )
        try:
            deadline = time.monotonic() + 30
            while not (state.exists() and [b["id"] for b in json.loads(state.read_text())["batches"] if b["id"]]):
                assert child.poll() is None, child.stderr.read().decode()
                assert time.monotonic() < deadline, "the state file never named the batch"
                time.sleep(0.02)
            while server.batch_stats["retrieves"] < 2:  # it is polling
                time.sleep(0.02)
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.stdout.read() == b"", "nothing was answered before the kill"
        assert server.batch_stats["batches_created"] == 1
        server.batch["retrieves_per_step"] = 1
        outcomes = collect(backend(server, state), work)
        assert server.batch_stats["batches_created"] == 1, "the rerun re-attached"
        assert server.batch_stats["files_uploaded"] == 1
    assert all(o.ok and o.generation["batch_id"] == "batch_1" for o in outcomes.values())


def test_rerun_asks_only_for_unjournaled_tasks_and_submits_nothing(tmp_path):
    state = tmp_path / "state.json"
    with ChatServer() as server:
        collect(backend(server, state), text_tasks(4))
        again = collect(backend(server, state), text_tasks(4)[2:])
        assert server.batch_stats["batches_created"] == 1
    assert all(o.ok for o in again.values())


def test_interrupted_creation_is_found_by_its_input_file(tmp_path):
    state = tmp_path / "state.json"
    with ChatServer() as server:
        collect(backend(server, state), text_tasks(3))
        recorded = json.loads(state.read_text())
        recorded["batches"][0]["id"] = None  # killed between batches.create and the state write
        state.write_text(json.dumps(recorded))
        outcomes = collect(backend(server, state), text_tasks(3))
        assert server.batch_stats["batches_created"] == 1
    assert json.loads(state.read_text())["batches"][0]["id"] == "batch_1"
    assert all(o.ok for o in outcomes.values())


def test_polling_outage_is_waited_out(tmp_path):
    with ChatServer() as server:
        server.batch["retrieve_errors"] = 3
        outcomes = collect(backend(server, tmp_path / "state.json", api={"max_retries": 0}), text_tasks(2))
        assert server.batch_stats["batches_created"] == 1
    assert all(o.ok for o in outcomes.values())


def test_rejected_line_is_not_paid_again_on_a_rerun(tmp_path):
    work = text_tasks(2, "Describe rec-{n}. [[context-overflow]]")
    with ChatServer() as server:
        first = collect(backend(server, tmp_path / "state.json"), work)
        again = collect(backend(server, tmp_path / "state.json"), work)  # failures are not journaled
        assert server.batch_stats["batches_created"] == 1
    assert {o.error_kind for o in [*first.values(), *again.values()]} == {"rejected"}


def test_changed_model_is_not_reattached(tmp_path):
    state = tmp_path / "state.json"
    with ChatServer(models=("test-vlm", "other-vlm")) as server:
        collect(backend(server, state), text_tasks(2))
        outcomes = collect(backend(server, state, api={"model": "other-vlm"}), text_tasks(2))
        assert server.batch_stats["batches_created"] == 2
    assert {o.generation["model"] for o in outcomes.values()} == {"other-vlm"}


def test_request_over_the_file_limit_fails_its_record(tmp_path):
    work = text_tasks(2)
    work[1] = text_tasks(2, "Describe rec-{n}. " + "x" * 4000)[1]
    with ChatServer() as server:
        outcomes = collect(backend(server, tmp_path / "state.json", max_file_mb=2000 / 2**20), work)
        assert server.batch_stats["lines_per_batch"] == [1]
    assert outcomes["r0"].ok
    assert outcomes["r1"].error_kind == "rejected" and "batch.max_file_mb" in outcomes["r1"].error


def test_changed_prompt_is_submitted_again(tmp_path):
    state = tmp_path / "state.json"
    with ChatServer() as server:
        collect(backend(server, state), text_tasks(2))
        outcomes = collect(backend(server, state), text_tasks(2, "Describe rec-{n} again."))
        assert server.batch_stats["batches_created"] == 2
    assert all(o.ok and "again" not in o.answer for o in outcomes.values())


@pytest.mark.parametrize("knob", ["fail_share", "error_share"])
def test_failed_lines_go_into_a_follow_up_batch(tmp_path, knob):
    with ChatServer(seed=3) as server:
        server.batch.update({knob: 0.5, "faulty_batches": 1})
        outcomes = collect(backend(server, tmp_path / "state.json"), text_tasks(20))
        stats = server.batch_stats
    assert stats["batches_created"] == 2
    assert 0 < stats["lines_per_batch"][1] < 20
    assert all(o.ok for o in outcomes.values())
    retried = [o for o in outcomes.values() if o.generation["batch_id"] == "batch_2"]
    assert len(retried) == stats["lines_per_batch"][1]
    assert all(o.generation["attempts"] == 2 for o in retried)


def test_retries_run_out(tmp_path):
    with ChatServer() as server:
        server.batch["fail_share"] = 1.0
        outcomes = collect(backend(server, tmp_path / "state.json", api={"max_retries": 2}), text_tasks(3))
        assert server.batch_stats["batches_created"] == 3
    for outcome in outcomes.values():
        assert outcome.error_kind == "retries_exhausted" and "500" in outcome.error
        assert outcome.generation["attempts"] == 3


def test_expired_batch_keeps_its_lines_and_finishes_in_a_second(tmp_path):
    with ChatServer() as server:
        server.batch.update({"expire_after": 3, "faulty_batches": 1})
        outcomes = collect(backend(server, tmp_path / "state.json"), text_tasks(8))
        assert server.batch_stats["lines_per_batch"] == [8, 5]
    assert all(o.ok for o in outcomes.values())
    assert sorted(o.id for o in outcomes.values() if o.generation["batch_id"] == "batch_1") == ["r0", "r1", "r2"]


def test_batch_failed_for_a_full_queue_is_resubmitted(tmp_path):
    with ChatServer() as server:
        server.batch.update({"fail_batches": 1, "fail_code": "token_limit_exceeded"})
        outcomes = collect(backend(server, tmp_path / "state.json"), text_tasks(3))
        assert server.batch_stats["lines_per_batch"] == [3, 3]
    assert all(o.ok and o.generation["batch_id"] == "batch_2" for o in outcomes.values())


def test_batch_failed_validation_fails_its_lines_for_good(tmp_path):
    state = tmp_path / "state.json"
    with ChatServer() as server:
        server.batch["fail_batches"] = 1
        outcomes = collect(backend(server, state), text_tasks(3))
        assert server.batch_stats["lines_per_batch"] == [3], "not resubmitted unchanged"
    for outcome in outcomes.values():
        assert outcome.error_kind == "rejected"
        assert "batch_1 failed validation" in outcome.error and "(test knob)" in outcome.error


def test_validation_error_naming_a_line_fails_only_that_record(tmp_path):
    work = text_tasks(3)
    work[1] = text_tasks(2, "Describe rec-{n}. [[invalid-batch-line]]")[1]
    with ChatServer() as server:
        outcomes = collect(backend(server, tmp_path / "state.json"), work)
        assert server.batch_stats["lines_per_batch"] == [3, 2], "the others go again, without the bad line"
    assert outcomes["r0"].ok and outcomes["r2"].ok
    assert outcomes["r1"].error_kind == "rejected"
    assert "at line 2" in outcomes["r1"].error and "request body is invalid" in outcomes["r1"].error


def test_cancelled_batch_is_resubmitted_and_said_so(tmp_path, capsys):
    with ChatServer() as server:
        server.batch["retrieves_per_step"] = 3
        run = backend(server, tmp_path / "state.json")
        run.sleep = lambda _: server.batches["batch_1"]["object"]["status"] == "validating" and server.cancel("batch_1")
        outcomes = collect(run, text_tasks(3))
        assert server.batch_stats["cancelled"] == 1 and server.batch_stats["lines_per_batch"] == [3, 3]
    assert all(o.ok and o.generation["batch_id"] == "batch_2" for o in outcomes.values())
    assert "cancelled" in capsys.readouterr().err


def test_large_input_is_split_into_several_batches(tmp_path):
    with ChatServer() as server:
        outcomes = collect(backend(server, tmp_path / "state.json", max_requests=4), text_tasks(10))
        assert server.batch_stats["lines_per_batch"] == [4, 4, 2]
    assert all(o.ok for o in outcomes.values())
    assert len(json.loads((tmp_path / "state.json").read_text())["batches"]) == 3


def test_file_size_limit_splits_too(tmp_path):
    with ChatServer() as server:
        work = text_tasks(6, images=(demo_image(),))
        one_line = len(json.dumps({"x": __import__("vqaflow.images").images.data_url(demo_image(), 1 << 20)}))
        outcomes = collect(backend(server, tmp_path / "state.json", max_file_mb=2.5 * one_line / 2**20), work)
        assert server.batch_stats["lines_per_batch"] == [2, 2, 2]
    assert all(o.ok for o in outcomes.values())


def test_rejected_line_fails_only_its_record(tmp_path):
    work = text_tasks(3)
    work[1] = text_tasks(2, "Describe rec-{n}. [[context-overflow]]")[1]
    with ChatServer() as server:
        outcomes = collect(backend(server, tmp_path / "state.json"), work)
        assert server.batch_stats["batches_created"] == 1
    assert outcomes["r0"].ok and outcomes["r2"].ok
    assert outcomes["r1"].error_kind == "rejected" and "400" in outcomes["r1"].error
    assert "maximum context length" in outcomes["r1"].error


def test_empty_answers_are_retried(tmp_path):
    with ChatServer(faults={"empty": 0.5}, seed=2) as server:
        outcomes = collect(backend(server, tmp_path / "state.json"), text_tasks(10))
        assert server.stats["statuses"]["empty"] > 0
    assert all(o.ok and o.answer for o in outcomes.values())


def test_online_fallback(tmp_path):
    with ChatServer(seed=3) as server:
        server.batch.update({"fail_share": 0.5, "faulty_batches": 1})
        outcomes = collect(backend(server, tmp_path / "state.json", fallback="online"), text_tasks(12))
        assert server.batch_stats["batches_created"] == 1
        online_requests = server.stats["requests"]  # batch lines do not count as requests
    assert all(o.ok for o in outcomes.values())
    online = [o for o in outcomes.values() if o.generation["backend"] == "api"]
    assert 0 < len(online) == online_requests < 12


def test_online_fallback_takes_any_backend(tmp_path):
    class Recorder:
        def __init__(self):
            self.asked = []

        def identity(self):
            return {"backend": "other"}

        def run(self, work, on_outcome, on_retry=None):
            self.asked.extend(t.id for t in work)
            for task in work:
                on_outcome(Outcome(task.id, answer="from elsewhere", generation={"backend": "other"}))

    recorder = Recorder()
    with ChatServer() as server:
        server.batch["fail_share"] = 1.0
        outcomes = collect(backend(server, tmp_path / "state.json", online=recorder, fallback="online"), text_tasks(3))
    assert sorted(recorder.asked) == ["r0", "r1", "r2"]
    assert {o.answer for o in outcomes.values()} == {"from elsewhere"}


def test_unreadable_image_fails_its_record(tmp_path):
    work = text_tasks(2) + text_tasks(3, images=(str(tmp_path / "gone.png"),))[2:]
    with ChatServer() as server:
        outcomes = collect(backend(server, tmp_path / "state.json"), work)
        assert server.batch_stats["lines_per_batch"] == [2]
    assert outcomes["r2"].error_kind == "image"


def test_bad_key_is_fatal(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with ChatServer() as server, pytest.raises(FatalBackendError, match="OPENAI_API_KEY"):
        collect(backend(server, tmp_path / "state.json"), text_tasks(2))


# --- the workflow with backend: batch ----------------------------------------------------


@pytest.mark.workflow
def test_workflow_with_batch_backend(workdir):
    names = image_names(workdir)
    records = [
        {"id": f"r{n:03d}", "image": [f"images/{names[n % len(names)]}"],
         "conversation": [{"from": "human", "value": f"<image>\nWrite a Wikipedia article rec-{n}."}]}
        for n in range(6)
    ]
    with ChatServer() as server:
        write_records(workdir, records)
        write_config(workdir, server.base_url, backend="batch", shard_size=3,
                     batch={"poll_s": 0.05, "max_poll_s": 0.1})
        snakemake(workdir)
        assert server.batch_stats["batches_created"] == 2 and server.stats["requests"] == 0
        dataset = read_output(workdir, "dataset.jsonl")
        assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(6)]
        assert {r["generation"]["backend"] for r in dataset} == {"batch"}
        assert dataset[0]["parse"]["status"] == "ok"
        states = sorted((workdir / "results/test/batches").iterdir())
        assert [p.name for p in states] == ["shard-00000.json", "shard-00001.json"]
        rerun = snakemake(workdir)
        assert "Nothing to be done" in rerun.stdout + rerun.stderr
        assert server.batch_stats["batches_created"] == 2
