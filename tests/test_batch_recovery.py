"""The Batch backend finds its batches again whatever happens to its state files: lost,
corrupt, stale, another shard's after a change of shard_size; it reads result files line
by line and deletes its uploads. The real `openai` client against the local chat server."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from chat_server import ChatServer
from test_batch_backend import backend, collect
from vqaflow.backends.base import FatalBackendError
from workflow_helpers import text_tasks


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


class Stop(BaseException):
    """Stands for a kill of the job while it waits."""


def stopped_in_flight(server: ChatServer, state: Path, work) -> None:
    """Submit ``work`` and stop while its batches are still validating."""
    server.batch["retrieves_per_step"] = 10**6
    run = backend(server, state)

    def stop(_):
        raise Stop

    run.sleep = stop
    with pytest.raises(Stop):
        run.run(work, lambda outcome: pytest.fail(f"{outcome.id} answered before the stop"))
    server.batch["retrieves_per_step"] = 1


def answered_once(server: ChatServer, count: int) -> None:
    assert dict(server.stats["answered"]) == {f"rec-{n}": 1 for n in range(count)}


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "test" / "batches" / "shard-00000.json"


def test_every_batch_carries_its_metadata_and_line_keys(state):
    with ChatServer() as server:
        collect(backend(server, state), text_tasks(3))
        batch = server.batches["batch_1"]
    meta = batch["object"]["metadata"]
    assert meta["vqaflow"] == "2" and meta["vqaflow_run"] == "test" and meta["vqaflow_shard"] == "shard-00000"
    assert meta["vqaflow_stage"] == "generate" and meta["vqaflow_lines"] == "3"
    assert meta["vqaflow_input"].startswith("sha256:") and len(meta["vqaflow_identity"]) == 16
    assert len(meta) <= 16 and all(isinstance(v, str) and len(v) <= 512 for v in meta.values())
    recorded = json.loads(state.read_text())["batches"][0]
    assert [line["custom_id"] for line in batch["lines"]] == recorded["keys"]


def test_lost_state_file_reattaches_through_the_listing(state):
    with ChatServer() as server:
        stopped_in_flight(server, state, text_tasks(4))
        state.unlink()
        outcomes = collect(backend(server, state), text_tasks(4))
        assert server.batch_stats["batches_created"] == 1 and server.batch_stats["downloads"]["batch"] == 1
        answered_once(server, 4)
        again = collect(backend(server, state), text_tasks(4)[:2])  # found in the cache now
        assert server.batch_stats["downloads"]["batch"] == 1
    assert all(o.ok and o.generation["batch_id"] == "batch_1" for o in [*outcomes.values(), *again.values()])


def test_corrupt_state_file_is_named_set_aside_and_recovered(state, capsys):
    with ChatServer() as server:
        stopped_in_flight(server, state, text_tasks(3))
        state.write_text('{"version": 2, "batches": [{"id": "batch_1", "inp')
        outcomes = collect(backend(server, state), text_tasks(3))
        assert server.batch_stats["batches_created"] == 1
        answered_once(server, 3)
    assert all(o.ok for o in outcomes.values())
    assert str(state) in capsys.readouterr().err
    assert state.with_name(state.name + ".corrupt").read_text().startswith('{"version": 2')
    assert json.loads(state.read_text())["batches"][0]["id"] == "batch_1"


def test_new_shards_attach_to_the_batches_of_the_old_layout(state):
    """shard_size changed: two new shards each take their lines of the old shards' batches."""
    work = text_tasks(6)
    second = state.with_name("shard-00001.json")
    with ChatServer() as server:
        stopped_in_flight(server, state, work[:4])
        stopped_in_flight(server, second, work[4:])
        low = collect(backend(server, state), work[:3])  # the new shard-00000: r0-r2
        high = collect(backend(server, second), work[3:])  # the new shard-00001: r3-r5, one from batch_1
        assert server.batch_stats["batches_created"] == 2
        answered_once(server, 6)
    assert all(o.ok for o in [*low.values(), *high.values()])
    assert high["r3"].generation["batch_id"] == "batch_1" and high["r4"].generation["batch_id"] == "batch_2"


def test_new_layout_with_no_state_files_at_all(state):
    work = text_tasks(6)
    second = state.with_name("shard-00001.json")
    with ChatServer() as server:
        stopped_in_flight(server, state, work[:4])
        stopped_in_flight(server, second, work[4:])
        state.unlink()
        second.unlink()
        high = collect(backend(server, second), work[3:])
        low = collect(backend(server, state), work[:3])
        assert server.batch_stats["batches_created"] == 2
        answered_once(server, 6)
    assert all(o.ok for o in [*low.values(), *high.values()])


def test_batch_found_without_this_shards_lines_is_still_read_by_its_own_shard(state):
    """Both state files lost (issue 21): the first shard to list records the other's batch as
    holding none of its lines; that says nothing of the other shard, which reads it back."""
    work = text_tasks(4)
    second = state.with_name("shard-00001.json")
    with ChatServer() as server:
        stopped_in_flight(server, state, work[:2])
        stopped_in_flight(server, second, work[2:])
        state.unlink()
        second.unlink()
        low = collect(backend(server, state), work[:2])
        high = collect(backend(server, second), work[2:])
        assert server.batch_stats["batches_created"] == 2
        answered_once(server, 4)
    assert [o.generation["batch_id"] for o in [*low.values(), *high.values()]] == ["batch_1"] * 2 + ["batch_2"] * 2


def test_other_shards_batch_with_an_unrecorded_id_is_found_by_its_input_file(state):
    work = text_tasks(4)
    second = state.with_name("shard-00001.json")
    with ChatServer() as server:
        stopped_in_flight(server, second, work)
        recorded = json.loads(second.read_text())
        recorded["batches"][0]["id"] = None  # its job was killed before it recorded the id
        second.write_text(json.dumps(recorded))
        outcomes = collect(backend(server, state), work[:2])
        assert server.batch_stats["batches_created"] == 1 and server.batch_stats["downloads"]["batch"] == 0
    assert all(o.ok and o.generation["batch_id"] == "batch_1" for o in outcomes.values())


def test_listed_batch_without_lines_of_this_shard_is_read_once(state):
    with ChatServer() as server:
        stopped_in_flight(server, state.with_name("gone.json"), text_tasks(2, "Other rec-{n}."))
        state.with_name("gone.json").unlink()
        collect(backend(server, state), text_tasks(2))
        collect(backend(server, state), text_tasks(3)[2:])
        assert server.batch_stats["downloads"]["batch"] == 1


def test_result_file_that_fails_to_download_is_fetched_at_the_next_poll(state):
    with ChatServer() as server:
        server.batch["download_errors"] = 4  # the client's own three retries fail too
        outcomes = collect(backend(server, state), text_tasks(2))
        assert server.batch_stats["batches_created"] == 1
    assert all(o.ok for o in outcomes.values())


def test_listing_is_read_page_by_page(state):
    with ChatServer() as server:
        stopped_in_flight(server, state, text_tasks(2))
        client = openai.OpenAI(api_key="test-key", base_url=server.base_url)
        other = client.files.create(file=("other.jsonl", b'{"custom_id": "x", "method": "POST", "url": '
                                          b'"/v1/chat/completions", "body": {}}\n'), purpose="batch")
        for _ in range(130):  # newer batches of someone else: ours is on the second page
            client.batches.create(input_file_id=other.id, endpoint="/v1/chat/completions", completion_window="24h")
        state.unlink()
        outcomes = collect(backend(server, state), text_tasks(2))
        assert server.batch_stats["batches_created"] == 131 and server.batch_stats["listings"] >= 2
    assert all(o.ok and o.generation["batch_id"] == "batch_1" for o in outcomes.values())


def test_torn_output_line_costs_only_its_record(state):
    with ChatServer() as server:
        server.batch.update({"torn_lines": 1, "faulty_batches": 1})
        outcomes = collect(backend(server, state), text_tasks(5))
        assert server.batch_stats["lines_per_batch"] == [5, 1]
        answered = server.stats["answered"]
        assert sorted(answered.values()) == [1, 1, 1, 1, 2]
        again = collect(backend(server, state), text_tasks(5))  # nothing journaled here: all from batches
        assert server.batch_stats["batches_created"] == 2
    assert all(o.ok for o in [*outcomes.values(), *again.values()])


def test_input_files_are_deleted_once_stored_unless_kept(tmp_path):
    with ChatServer() as server:
        collect(backend(server, tmp_path / "a" / "state.json"), text_tasks(2))
        assert server.batch_stats["files_deleted"] == 1
        assert [f["meta"]["purpose"] for f in server.files.values()] == ["batch_output"]
        collect(backend(server, tmp_path / "b" / "state.json", keep_files=True), text_tasks(2, "Other rec-{n}."))
        assert server.batch_stats["files_deleted"] == 1


def test_upload_without_a_batch_is_reused(state):
    with ChatServer() as server:
        stopped_in_flight(server, state, text_tasks(3))
        recorded = json.loads(state.read_text())
        del server.batches["batch_1"]  # killed after the upload, before batches.create
        recorded["batches"][0]["id"] = None
        state.write_text(json.dumps(recorded))
        outcomes = collect(backend(server, state), text_tasks(3))
        assert server.batch_stats["files_uploaded"] == 1 and server.batch_stats["batches_created"] == 2
    assert all(o.ok for o in outcomes.values())


def test_orphan_upload_of_a_lost_state_file_is_deleted(state):
    with ChatServer() as server:
        stopped_in_flight(server, state, text_tasks(3))
        orphan = json.loads(state.read_text())["batches"][0]["input_file_id"]
        del server.batches["batch_1"]
        state.unlink()
        outcomes = collect(backend(server, state), text_tasks(3))
        assert orphan not in server.files, "the orphan was deleted"
        assert server.batch_stats["files_uploaded"] == 2
    assert all(o.ok for o in outcomes.values())


def test_failing_listing_is_named_and_nothing_is_paid(state):
    with ChatServer() as server:
        server.batch["list_status"] = 404
        with pytest.raises(FatalBackendError) as raised:
            collect(backend(server, state), text_tasks(2))
        assert server.batch_stats["files_uploaded"] == 0
    message = str(raised.value)
    assert "listing batches" in message and "HTTP 404" in message and "unknown model" not in message
    assert str(state) in message


def test_failing_listing_goes_on_when_the_state_file_knows_every_line(state, capsys):
    with ChatServer() as server:
        stopped_in_flight(server, state, text_tasks(2))
        server.batch["list_status"] = 500
        outcomes = collect(backend(server, state), text_tasks(2))
        assert server.batch_stats["batches_created"] == 1
    assert all(o.ok for o in outcomes.values())
    assert "listing batches" in capsys.readouterr().err
