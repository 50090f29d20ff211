"""The API backend with the real `openai` client against the local chat server."""

from __future__ import annotations

import time

import pytest

from chat_server import ChatServer
from vqaflow.backends.api import ApiBackend, ApiSettings
from vqaflow.backends.base import FatalBackendError, GenerationTask, Sampling
from vqaflow.prompts import Prompt, chat_messages


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def tasks(count: int, text: str = "Describe rec-{n}.", images: tuple[str, ...] = ()) -> list[GenerationTask]:
    return [
        GenerationTask(f"r{n}", Prompt(None, (("user", text.format(n=n)),), images), seed=n)
        for n in range(count)
    ]


# the config schema's defaults, but quick backoff
DEFAULTS = {
    "model": "test-vlm", "key_env": "OPENAI_API_KEY", "base_url": None, "max_concurrency": 64,
    "timeout_s": 120.0, "connect_timeout_s": 10.0, "max_retries": 8, "max_empty_retries": 2,
    "backoff_s": 0.01, "backoff_max_s": 60.0, "dead_after_s": 60.0,
    "requests_per_minute": None, "tokens_per_minute": None,
}


def settings_for(base_url: str, **settings) -> ApiSettings:
    return ApiSettings(**{**DEFAULTS, "base_url": base_url, **settings})


def run(server: ChatServer | str, work: list[GenerationTask], max_tokens: int = 64, **settings) -> dict:
    base_url = server if isinstance(server, str) else server.base_url
    backend = ApiBackend(settings_for(base_url, **settings), Sampling(max_tokens=max_tokens), max_pixels=1 << 20)
    outcomes = {}

    def record(outcome):
        assert outcome.id not in outcomes, "each task is reported once"
        outcomes[outcome.id] = outcome

    backend.run(work, record)
    return outcomes


def test_answers_carry_generation_details():
    with ChatServer() as server:
        outcomes = run(server, tasks(3))
    assert sorted(outcomes) == ["r0", "r1", "r2"]
    outcome = outcomes["r1"]
    assert outcome.ok and "rec-1" in outcome.answer and "seed" in outcome.answer
    assert outcome.generation["finish_reason"] == "stop"
    assert outcome.generation["attempts"] == 1
    assert outcome.generation["prompt_tokens"] > 0 and outcome.generation["completion_tokens"] > 0


def test_concurrency_is_capped_and_reached():
    with ChatServer(latency=0.05) as server:
        outcomes = run(server, tasks(60), max_concurrency=6)
        assert server.stats["max_in_flight"] == 6
    assert all(o.ok for o in outcomes.values())


def test_retry_after_is_honoured_then_retries_run_out():
    with ChatServer(faults={"429": 1.0}, retry_after=0.2) as server:
        started = time.monotonic()
        outcomes = run(server, tasks(1), max_retries=2)
        elapsed = time.monotonic() - started
        assert server.stats["statuses"]["429"] == 3
    outcome = outcomes["r0"]
    assert outcome.error_kind == "retries_exhausted" and "429" in outcome.error
    assert outcome.generation["attempts"] == 3
    assert elapsed >= 0.4


@pytest.mark.parametrize("fault", ["500", "drop", "empty"])
def test_transient_faults_are_retried(fault):
    with ChatServer(faults={fault: 0.5}, seed=1) as server:
        outcomes = run(server, tasks(20), max_empty_retries=8)
        assert server.stats["statuses"][fault] > 0
    assert all(o.ok and o.answer for o in outcomes.values())


def test_rejected_request_fails_only_its_record():
    work = tasks(3)
    work[1] = tasks(2, "Describe rec-{n}. [[context-overflow]]")[1]
    with ChatServer() as server:
        outcomes = run(server, work)
    assert outcomes["r0"].ok and outcomes["r2"].ok
    assert outcomes["r1"].error_kind == "rejected" and "400" in outcomes["r1"].error


def test_bad_key_is_fatal_after_one_request(monkeypatch):
    monkeypatch.setenv("MY_KEY", "wrong")
    with ChatServer() as server:
        with pytest.raises(FatalBackendError, match="MY_KEY"):
            run(server, tasks(50), key_env="MY_KEY")
        assert server.stats["statuses"] == {"401": 1}, "only the model listing was sent"


def test_unlisted_model_costs_one_request():
    with ChatServer(models=("other-vlm",)) as server:
        with pytest.raises(FatalBackendError, match="unknown model"):
            run(server, tasks(50), max_concurrency=16)
        assert server.stats["statuses"] == {"200": 1, "404": 1}


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with ChatServer() as server, pytest.raises(FatalBackendError, match="OPENAI_API_KEY"):
        run(server, tasks(1))


def test_unreadable_image_fails_its_record(tmp_path):
    work = tasks(2, images=(str(tmp_path / "gone.png"),))
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
        outcomes = run(server, tasks(16), requests_per_minute=120, max_concurrency=8)
        elapsed = time.monotonic() - started
    # 12 requests (6 s at 2/s) may burst; the other 4 wait half a second each
    assert len(outcomes) == 16 and elapsed >= 1.8
