"""The API backend with the real `openai` client against the local chat server."""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest

from chat_server import ChatServer
from vqaflow.backends.api import ApiBackend
from vqaflow.backends.base import FatalBackendError, GenerationTask
from vqaflow.backends.openai_protocol import (
    Retryable,
    attempt_seed,
    decode_body,
    error_text,
    public_url,
    read_completion,
    request_body,
)
from vqaflow.prompts import Prompt, chat_messages
from workflow_helpers import api_settings_for, sampling, text_tasks


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def run(
    server: ChatServer | str, work: list[GenerationTask], max_tokens: int = 64, on_outcome=None, **settings
) -> dict:
    base_url = server if isinstance(server, str) else server.base_url
    backend = ApiBackend(api_settings_for(base_url, **settings), sampling(max_tokens=max_tokens), max_pixels=1 << 20)
    outcomes = {}

    def record(outcome):
        assert outcome.id not in outcomes, "each task is reported once"
        outcomes[outcome.id] = outcome
        if on_outcome is not None:
            on_outcome(outcome)

    backend.run(work, record)
    return outcomes


def test_answers_carry_generation_details():
    with ChatServer() as server:
        outcomes = run(server, text_tasks(3))
    assert sorted(outcomes) == ["r0", "r1", "r2"]
    outcome = outcomes["r1"]
    assert outcome.ok and "rec-1" in outcome.answer and "seed" in outcome.answer
    assert outcome.generation["finish_reason"] == "stop"
    assert outcome.generation["attempts"] == 1
    assert outcome.generation["prompt_tokens"] > 0 and outcome.generation["completion_tokens"] > 0


def test_concurrency_is_capped_and_reached():
    with ChatServer(latency=0.05) as server:
        outcomes = run(server, text_tasks(60), max_concurrency=6)
        assert server.stats["max_in_flight"] == 6
    assert all(o.ok for o in outcomes.values())


def test_retry_after_is_honoured_then_retries_run_out():
    with ChatServer(faults={"429": 1.0}, retry_after=0.2) as server:
        started = time.monotonic()
        outcomes = run(server, text_tasks(1), max_retries=2)
        elapsed = time.monotonic() - started
        assert server.stats["statuses"]["429"] == 3
    outcome = outcomes["r0"]
    assert outcome.error_kind == "retries_exhausted" and "429" in outcome.error
    assert outcome.generation["attempts"] == 3
    assert elapsed >= 0.4


@pytest.mark.parametrize("fault", ["500", "drop", "empty"])
def test_transient_faults_are_retried(fault):
    with ChatServer(faults={fault: 0.5}, seed=1) as server:
        outcomes = run(server, text_tasks(20), max_empty_retries=8)
        assert server.stats["statuses"][fault] > 0
    assert all(o.ok and o.answer for o in outcomes.values())


def test_rejected_request_fails_only_its_record():
    work = text_tasks(3)
    work[1] = text_tasks(2, "Describe rec-{n}. [[context-overflow]]")[1]
    with ChatServer() as server:
        outcomes = run(server, work)
    assert outcomes["r0"].ok and outcomes["r2"].ok
    assert outcomes["r1"].error_kind == "rejected" and "400" in outcomes["r1"].error


def test_bad_key_is_fatal_after_one_request(monkeypatch):
    monkeypatch.setenv("MY_KEY", "wrong")
    with ChatServer() as server:
        with pytest.raises(FatalBackendError, match="MY_KEY"):
            run(server, text_tasks(50), key_env="MY_KEY")
        assert server.stats["statuses"] == {"401": 1}, "only the model listing was sent"


def test_unlisted_model_costs_one_request():
    with ChatServer(models=("other-vlm",)) as server:
        with pytest.raises(FatalBackendError, match="unknown model"):
            run(server, text_tasks(50), max_concurrency=16)
        assert server.stats["statuses"] == {"200": 1, "404": 1}


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with ChatServer() as server, pytest.raises(FatalBackendError, match="OPENAI_API_KEY"):
        run(server, text_tasks(1))


def test_unreadable_image_fails_its_record(tmp_path):
    work = text_tasks(2, images=(str(tmp_path / "gone.png"),))
    with ChatServer() as server:
        outcomes = run(server, work)
        assert server.stats["requests"] == 0
    assert {o.error_kind for o in outcomes.values()} == {"image"}


def test_each_image_is_its_own_content_part():
    prompt = Prompt("Be brief.", (("user", "Compare."), ("assistant", "Ok."), ("user", "More.")), ())
    parts = [{"type": "image_url", "image_url": {"url": url}} for url in ("data:a", "data:b")]
    messages = chat_messages(prompt, parts)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert [p["type"] for p in messages[1]["content"]] == ["image_url", "image_url", "text"]
    assert messages[2:] == [{"role": "assistant", "content": "Ok."}, {"role": "user", "content": "More."}]


def test_requests_per_minute_limit_paces_after_a_short_burst():
    with ChatServer() as server:
        started = time.monotonic()
        outcomes = run(server, text_tasks(16), requests_per_minute=120, max_concurrency=8)
        elapsed = time.monotonic() - started
    # 12 requests (6 s at 2/s) may burst; the other 4 wait half a second each
    assert len(outcomes) == 16 and elapsed >= 1.8


# --- robustness: every record isolated, the endpoint checked, empty answers ---------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("fault", ["html", "text", "truncated_json", "error_body"])
def test_unreadable_200_answers_are_retried(fault):
    with ChatServer(faults={fault: 0.5}, seed=1) as server:
        outcomes = run(server, text_tasks(20))
        assert server.stats["statuses"][fault] > 0
    assert all(o.ok and "rec-" in o.answer for o in outcomes.values())
    assert max(o.generation["attempts"] for o in outcomes.values()) > 1


def test_unreadable_200_answers_are_named_when_retries_run_out():
    with ChatServer(faults={"html": 1.0}) as server:
        outcomes = run(server, text_tasks(1), max_retries=1)
    outcome = outcomes["r0"]
    assert outcome.error_kind == "retries_exhausted"
    assert "bad_response" in outcome.error and "HTML page" in outcome.error and "502 Bad Gateway" in outcome.error


def test_closed_port_fails_in_seconds_naming_the_url():
    url = f"http://user:secret@127.0.0.1:{free_port()}/v1?token=hidden"
    started = time.monotonic()
    with pytest.raises(FatalBackendError) as failure:
        run(url, text_tasks(4))
    assert time.monotonic() - started < 10
    message = str(failure.value)
    assert f"http://127.0.0.1:{url.split(':')[3].split('/')[0]}/v1" in message
    assert "OPENAI_BASE_URL" in message and "api.base_url" in message
    assert "secret" not in message and "hidden" not in message


def test_unknown_host_fails_in_seconds():
    started = time.monotonic()
    with pytest.raises(FatalBackendError, match="cannot connect to http://no-such-host.invalid/v1"):
        run("http://no-such-host.invalid/v1", text_tasks(1), connect_timeout_s=5)
    assert time.monotonic() - started < 30


def test_server_that_never_answers_fails_after_the_connect_timeout():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        started = time.monotonic()
        with pytest.raises(FatalBackendError, match="no answer from " + re.escape(url)) as failure:
            run(url, text_tasks(4), timeout_s=1, connect_timeout_s=1)
        assert time.monotonic() - started < 1 + 5
    assert "api.connect_timeout_s" in str(failure.value)


def test_hanging_chat_requests_stop_the_run_after_dead_after_s():
    with ChatServer(faults={"hang": 1.0}) as server:
        started = time.monotonic()
        with pytest.raises(FatalBackendError, match=re.escape(server.base_url) + ".*dead_after_s"):
            run(server, text_tasks(4), timeout_s=1, dead_after_s=2, max_retries=100, backoff_max_s=0.2)
        assert time.monotonic() - started < 15


def test_server_dying_mid_run_stops_it_after_dead_after_s():
    server = ChatServer(latency=0.02).__enter__()
    answered = []
    threading.Timer(0.5, server.__exit__).start()
    started = time.monotonic()
    with pytest.raises(FatalBackendError, match=re.escape(server.base_url) + ".*connection level"):
        run(server, text_tasks(2000), max_concurrency=4, dead_after_s=2, max_retries=1000,
            backoff_max_s=0.2, on_outcome=answered.append)
    assert time.monotonic() - started < 30
    assert answered and all(o.ok for o in answered), "records answered before the server died stay answered"


def test_empty_answers_vary_the_seed_then_fail_as_empty_answer():
    with ChatServer(faults={"empty": 1.0}) as server:
        outcomes = run(server, text_tasks(2), max_empty_retries=2)
        assert server.stats["requests"] == 2 * 3
    outcome = outcomes["r1"]
    assert outcome.error_kind == "empty_answer" and outcome.generation["attempts"] == 3
    seeds = re.search(r"seeds ([\d, ]+)", outcome.error).group(1).split(", ")
    assert seeds[0] == "1" and len(set(seeds)) == 3


def test_answer_after_an_empty_one_records_the_seed_used():
    with ChatServer(faults={"empty": 0.5}, seed=3) as server:
        outcomes = run(server, text_tasks(30), max_empty_retries=8)
    for n, outcome in enumerate(outcomes[f"r{n}"] for n in range(30)):
        seed = outcome.generation["seed"]
        assert outcome.ok and f"A: {seed}" in outcome.answer
        assert (seed == n) == (outcome.generation["attempts"] == 1)


def test_unprocessable_request_keeps_the_servers_message():
    work = text_tasks(2, "Describe rec-{n}. [[unprocessable]]")
    with ChatServer() as server:
        outcomes = run(server, work)
    outcome = outcomes["r0"]
    assert outcome.error_kind == "rejected"
    assert outcome.error == "HTTP 422: body.messages.0: unsupported content part"


def test_record_raising_in_preparation_fails_alone():
    work = text_tasks(3)
    work[1] = GenerationTask("r1", Prompt(None, (("user", "Describe rec-1."),), (None,)), seed=1)
    with ChatServer() as server:
        outcomes = run(server, work)
    assert outcomes["r0"].ok and outcomes["r2"].ok
    assert outcomes["r1"].error_kind == "internal" and "AttributeError" in outcomes["r1"].error


def test_decompression_bomb_fails_its_record_alone(tmp_path):
    from test_images import png_header_only

    bomb = png_header_only(tmp_path / "bomb.png", 20000, 20000)
    work = text_tasks(3)
    work[1] = text_tasks(2, images=(bomb,))[1]
    with ChatServer() as server:
        outcomes = run(server, work)
    assert outcomes["r0"].ok and outcomes["r2"].ok
    assert outcomes["r1"].error_kind == "image" and "400,000,000 pixels" in outcomes["r1"].error


def test_server_honours_max_tokens():
    with ChatServer() as server:
        outcomes = run(server, text_tasks(1), max_tokens=4)
    outcome = outcomes["r0"]
    assert outcome.generation["finish_reason"] == "length" and len(outcome.answer) == 16


def test_protocol_reads_completions_and_names_bad_bodies():
    completion = {"model": "m2", "choices": [{"finish_reason": "stop", "message": {"content": "Hi."}}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    answer, generation = read_completion(decode_body(json.dumps(completion).encode()), "m")
    assert answer == "Hi." and generation == {"backend": "api", "model": "m2", "finish_reason": "stop",
                                              "prompt_tokens": 3, "completion_tokens": 1}
    cases = [(b"<!DOCTYPE html><html><title>502 Bad Gateway</title></html>", "HTML page"),
             (b"upstream reset", "with text"), (b'{"id": "x", "cho', "incomplete JSON"),
             (b"[1]", "not an object"), (b'{"error": {"message": "overloaded"}}', "error body: overloaded"),
             (b'{"choices": []}', "without a readable choice")]
    for raw, reason in cases:
        with pytest.raises(Retryable, match=reason) as failure:
            read_completion(decode_body(raw), "m")
        assert failure.value.kind == "bad_response"
    with pytest.raises(Retryable) as failure:
        read_completion({"choices": [{"finish_reason": "length", "message": {"content": " "}}]}, "m")
    assert failure.value.kind == "empty_answer" and "length" in str(failure.value)


def test_protocol_request_body_and_seeds():
    task = text_tasks(1, images=("x.png",))[0]
    body = request_body("m", task, ["data:image/png;base64,AA"], sampling(max_tokens=9, top_p=None), 7)
    assert body["seed"] == 7 and body["max_tokens"] == 9 and "top_p" not in body
    assert body["messages"][0]["content"][0] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
    assert "seed" not in request_body("m", task, [], sampling(), None)
    assert attempt_seed(7, 0) == 7 and attempt_seed(None, 2) is None
    assert attempt_seed(7, 1) == attempt_seed(7, 1) != attempt_seed(7, 2)


def test_protocol_messages_and_urls():
    assert error_text({"detail": [{"loc": ["body", "x"], "msg": "field required"}]}) == "body.x: field required"
    assert error_text({"detail": "Not Found"}) == "Not Found"
    assert error_text({"error": {"message": "nope"}}) == "nope"
    assert public_url("https://user:pw@host.example/v1/?key=1#f") == "https://host.example/v1"


class ServerWithoutListing(ChatServer):
    """A server with no ``/models`` route (404), as some inference servers are."""

    def _app(self):
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app


def test_server_without_model_listing_still_works():
    with ServerWithoutListing() as server:
        outcomes = run(server, text_tasks(5), connect_timeout_s=2)
        assert server.stats["statuses"] == {"200": 5}
    assert all(o.ok for o in outcomes.values())
