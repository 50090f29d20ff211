"""structured_output: auto, the default: the pipeline's JSON schema on every request, and free
text where the endpoint rejects it (after one rejection a shard, said once); true insists,
false sends no schema at all. With the real `openai` client against the local chat server."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from chat_server import SCHEMA_REJECTION, ChatServer
from vqaflow import free_text
from vqaflow.backends._factory import build_backend
from vqaflow.backends.openai_protocol import SCHEMA_REJECTED, RecordFailure, classify_status, request_body
from vqaflow.jsonl import read_jsonl, write_jsonl
from vqaflow.settings import prompt_settings
from vqaflow.stages.generate import generate_shard
from vqaflow.stages.jobs import judge_backend
from vqaflow.stages.repair import RepairSettings
from workflow_helpers import api_settings_for, sampling, schema_defaults, text_tasks

REPAIR = RepairSettings(enabled=True, max_tokens_factor=2, structured_output="auto")


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def shard(tmp_path, count: int, name: str = "shard-00000"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.jsonl"
    write_jsonl(path, [{"id": f"r{n}", "index": n, "record": {
        "id": f"r{n}", "conversation": [{"from": "human", "value": f"Write question answer pairs rec-{n}."}]}}
        for n in range(count)])
    return path


def generate(tmp_path, server: ChatServer, mode, count: int = 5, name: str = "shard-00000", **api) -> tuple:
    settings = replace(prompt_settings({**schema_defaults(), "pipeline": "image_vqa"}), structured_output=mode)
    backend = build_backend("api", sampling(max_tokens=256), settings.max_pixels,
                            api=asdict(api_settings_for(server.base_url, **api)))
    summary = generate_shard(shard(tmp_path, count, name), tmp_path / f"{name}.out.jsonl",
                             tmp_path / f"{name}.failed.jsonl", tmp_path / "journal" / f"{name}.jsonl",
                             settings, backend, replace(REPAIR, structured_output=mode))
    return (summary, list(read_jsonl(tmp_path / f"{name}.out.jsonl")),
            list(read_jsonl(tmp_path / f"{name}.failed.jsonl")))


def test_a_400_naming_the_response_format_is_a_schema_rejection():
    for status, message in ((400, SCHEMA_REJECTION), (400, "response_format is not supported"),
                            (422, "body.response_format.json_schema: extra fields not permitted")):
        error = classify_status(status, message)
        assert isinstance(error, RecordFailure) and error.kind == SCHEMA_REJECTED, message
    assert classify_status(400, "This model's maximum context length is 4096 tokens.").kind == "rejected"


def test_auto_asks_with_the_schema_where_it_is_taken(tmp_path):
    with ChatServer() as server:
        summary, answered, failed = generate(tmp_path, server, "auto")
        assert summary["answered"] == 5 and not failed
        assert server.stats["response_format"] == {"json_schema": 5}
        assert json.loads(answered[0]["answer"])["qas"], "the server answered the schema's JSON"
    assert free_text.takes_schema(tmp_path / "journal/shard-00000.jsonl", {"backend": "api", "base_url": server.base_url,
                                                                            "model": "test-vlm"}) is True
    assert not any("free_text_fallback" in line["generation"] for line in answered)


def test_auto_falls_back_after_one_rejection_a_shard_and_says_so(tmp_path, capsys):
    with ChatServer(reject_response_format=True, latency=0.01) as server:
        summary, answered, failed = generate(tmp_path, server, "auto", count=6)
        assert server.stats["statuses"]["400"] == 1, "one rejection, then free text"
        assert server.stats["response_format"] == {"json_schema": 1, "none": 6}
        assert summary["answered"] == 6 and not failed
        assert all(line["generation"]["free_text_fallback"] for line in answered)
        told = capsys.readouterr().err
        assert told.count("rejected the JSON schema (response_format)") == 1
        marker = free_text.marker_path(tmp_path / "journal/shard-00000.jsonl")
        assert marker.exists() and str(marker) in told
        journal = [json.loads(line) for line in (tmp_path / "journal/shard-00000.jsonl").read_text().splitlines()]
        assert [e["kind"] for e in journal if "error" in e] == [SCHEMA_REJECTED], "the rejection is journaled"
        assert len({e["fp"] for e in journal if e["id"] == "r0"}) == 2, "the free-text request has its own fingerprint"

        requests = server.stats["requests"]
        summary, again, _ = generate(tmp_path, server, "auto", count=6)
        assert server.stats["requests"] == requests, "a rerun finds every answer, schema not asked again"
        assert [line["answer"] for line in again] == [line["answer"] for line in answered]

        generate(tmp_path, server, "auto", count=3, name="shard-00001")
        assert server.stats["statuses"]["400"] == 2, "another shard: at most one rejection of its own"


def test_a_cut_off_answer_is_repaired_in_free_text_once_the_shard_fell_back(tmp_path):
    with ChatServer(reject_response_format=True, script={"rec-0": "Q: What is it?\nA: " + "word " * 400}) as server:
        summary, answered, failed = generate(tmp_path, server, "auto", count=2)
        assert not failed and answered[0]["generation"]["finish_reason"] in ("length", "stop")
        assert server.stats["statuses"]["400"] == 1, "the repair starts in free text: no second rejection"
        assert server.stats["response_format"] == {"json_schema": 1, "none": 3}, "two records and one repair"


def test_true_insists_and_false_sends_no_schema(tmp_path):
    with ChatServer(reject_response_format=True) as server:
        summary, answered, failed = generate(tmp_path / "true", server, True, count=3)
        assert not answered and {f["kind"] for f in failed} == {SCHEMA_REJECTED}
        assert all(not f["transient"] for f in failed), "a rejection for the schema is for good"
        assert server.stats["response_format"] == {"json_schema": 3}
        summary, answered, failed = generate(tmp_path / "false", server, False, count=3)
        assert len(answered) == 3 and not failed
        assert server.stats["response_format"] == {"json_schema": 3, "none": 3}
        assert not any("free_text_fallback" in line["generation"] for line in answered)


def test_false_keeps_the_free_text_request_byte_for_byte():
    (task,) = text_tasks(1)
    body = request_body("m", task, [], sampling(), task.seed)
    assert "response_format" not in body
    assert list(body) == ["model", "messages", "max_tokens", "temperature", "top_p", "seed"]


BATCH = {"poll_s": 0.01, "max_poll_s": 0.05, "fallback": "none", "max_requests": 50_000,
         "max_file_mb": 190, "completion_window": "24h", "discount": 0.5, "keep_files": False}


def test_a_batch_rejected_for_the_schema_is_resubmitted_once_without_it(tmp_path):
    settings = replace(prompt_settings({**schema_defaults(), "pipeline": "image_vqa"}), structured_output="auto")
    with ChatServer(reject_response_format=True) as server:
        backend = build_backend("batch", sampling(max_tokens=256), settings.max_pixels,
                                api=asdict(api_settings_for(server.base_url)), batch=BATCH,
                                state_path=tmp_path / "batches.json")
        summary = generate_shard(shard(tmp_path, 4), tmp_path / "out.jsonl", tmp_path / "failed.jsonl",
                                 tmp_path / "journal.jsonl", settings, backend, REPAIR)
        assert summary["answered"] == 4 and summary["failed"] == 0
        assert server.batch_stats["batches_created"] == 2
        assert server.stats["response_format"] == {"json_schema": 4, "none": 4}
        assert all(line["generation"]["free_text_fallback"] for line in read_jsonl(tmp_path / "out.jsonl"))


# --- the judge ---------------------------------------------------------------------------

UNREADABLE = {
    "rec-1": "Both pairs look fine to me.",
    "rec-3": json.dumps({"verdicts": [{"index": 0, "reason": "ok", "answerable": True, "correct": True},
                                      {"index": 99, "reason": "ok", "answerable": True, "correct": True}]}),
}


def judge(tmp_path, server: ChatServer, count: int = 4) -> tuple[dict, list[dict], list[dict]]:
    from vqaflow.stages.verify import verify_shard

    settings = prompt_settings({**schema_defaults(), "pipeline": "image_vqa"})
    lines = [{"id": f"r{n}", "index": n, "record": {"id": f"r{n}"}} for n in range(count)]
    write_jsonl(tmp_path / "shard-00000.jsonl", lines)
    write_jsonl(tmp_path / "refined.jsonl", [{"id": f"r{n}", "qas": [
        {"question": f"What is rec-{n}?", "answer": "a test", "flags": []},
        {"question": "What colour is it?", "answer": "red", "flags": []}]} for n in range(count)])
    backend = judge_backend({"backend": "api", "api": asdict(api_settings_for(server.base_url)), "vllm": None,
                             "max_tokens": 256, "structured_output": "auto"}, settings.max_pixels)
    counts = verify_shard(tmp_path / "refined.jsonl", tmp_path / "shard-00000.jsonl", tmp_path / "verified.jsonl",
                          tmp_path / "failed.jsonl", tmp_path / "journal.jsonl", settings, backend,
                          settings.pipeline.judge_prompt, "test-vlm", auto=True)
    return counts, list(read_jsonl(tmp_path / "verified.jsonl")), list(read_jsonl(tmp_path / "failed.jsonl"))


def test_unusable_verdicts_fail_their_records_and_the_rerun_asks_the_judge_again(tmp_path):
    with ChatServer(judge_script=dict(UNREADABLE)) as server:
        counts, verified, failed = judge(tmp_path, server)
        assert counts == {"records": 4, "verified": 2, "failed": 2, "transient": 2}
        assert [(f["id"], f["kind"], f["transient"]) for f in failed] == [
            ("r1", "unusable_verdicts", True), ("r3", "unusable_verdicts", True)]
        assert "pairs 1, 2 of 2 (not_json" in failed[0]["error"]
        assert "bad_index" in failed[1]["issues"] and "extra_verdicts" in failed[1]["issues"]
        by_id = {r["id"]: r for r in verified}
        assert by_id["r1"]["verify"]["status"] == "failed" and by_id["r1"]["verify"]["tokens"]["prompt"] > 0, \
            "a failed judge answer's tokens are counted"
        assert all(qa["verdict"] is None for qa in by_id["r3"]["qas"]), "no verdict is guessed"
        assert by_id["r0"]["verify"]["status"] == "ok"
        first_tokens = by_id["r1"]["verify"]["tokens"]

        server.judge_script.clear()
        counts, verified, failed = judge(tmp_path, server)
        assert server.stats["judged"] == {"rec-0": 1, "rec-1": 2, "rec-2": 1, "rec-3": 2}, "exactly those again"
        seeds = server.stats["judge_seeds"]
        assert seeds["rec-1"][0] != seeds["rec-1"][1] and seeds["rec-3"][0] != seeds["rec-3"][1], "a new seed"
        assert counts == {"records": 4, "verified": 4, "failed": 0, "transient": 0} and failed == []
        by_id = {r["id"]: r for r in verified}
        assert by_id["r1"]["verify"]["requests"] == 2
        assert by_id["r1"]["verify"]["tokens"]["prompt"] > first_tokens["prompt"], "both judge answers counted"

        judge(tmp_path, server)
        assert sum(server.stats["judged"].values()) == 6, "then nothing is asked again"
        assert server.stats["response_format"] == {"json_schema": 6}, "the judge asks with the verdict schema"


def test_the_judge_falls_back_to_free_text_too(tmp_path):
    with ChatServer(reject_response_format=True) as server:
        counts, verified, failed = judge(tmp_path, server)
        assert counts["verified"] == 4 and failed == []
        assert server.stats["statuses"]["400"] == 1
        assert all(record["verify"]["free_text_fallback"] for record in verified)


def test_judge_failures_count_in_the_gate_and_the_summary():
    from vqaflow.config_check import ConfigError, check_combinations, gate_message, run_summary

    stats = {"records_in": 10, "records_ok": 9, "records_failed": 1, "verify_failed": 3, "failed_fraction": 0.4,
             "failures_by_kind": {"image": 1}, "verify_failures_by_kind": {"unusable_verdicts": 3},
             "failures_transient": 3, "parse_status": {"ok": 9, "partial": 0, "none": 0}, "qa_pairs": 18,
             "tokens": {"prompt": 1, "completion": 1}, "cost": None}
    message = gate_message(stats, 0.05, "d.jsonl", "failed.jsonl", "verify_failed.jsonl")
    assert message.startswith("4 of 10 records failed (3 answered but not verified by the judge) (40.0%")
    assert "judge unusable_verdicts 3, image 1" in message and "failed.jsonl and verify_failed.jsonl" in message
    assert "unusable judge answers; 3 of the 4" in message
    summary = run_summary(stats, "r", {"dataset": "d", "failed": "f", "stats": "s", "report": "r",
                                       "verify_failed": "v.jsonl"})
    assert "1 failed (image 1; reasons in f), 3 not verified (reasons in v.jsonl)" in summary

    config = {**schema_defaults(), "export": {**schema_defaults()["export"], "keep": "verified"}}
    with pytest.raises(ConfigError, match="verify.enabled: true, or export.keep: all"):
        check_combinations(config)
    check_combinations({**config, "verify": {**config["verify"], "enabled": True}})


def test_the_reformat_starts_in_free_text_where_the_shard_fell_back(tmp_path):
    from vqaflow.stages.reformat import ReformatSettings

    car = "Sure! Q) What colour is the car? >> red\nQ) How many wheels does it have? >> four"
    settings = replace(prompt_settings({**schema_defaults(), "pipeline": "image_vqa"}), structured_output="auto")
    copy = {"qas": [{"question": "What colour is the car?", "answer": "red"},
                    {"question": "How many wheels does it have?", "answer": "four"}]}
    with ChatServer(reject_response_format=True, script={"rec-1": car}, reformats={car: copy}) as server:
        api = asdict(api_settings_for(server.base_url))
        backend = build_backend("api", sampling(max_tokens=256), settings.max_pixels, api=api)
        summary = generate_shard(shard(tmp_path, 2), tmp_path / "out.jsonl", tmp_path / "failed.jsonl",
                                 tmp_path / "journal.jsonl", settings, backend,
                                 replace(REPAIR, enabled=False), reformat=ReformatSettings(True, "api", 256, api=api))
        assert summary["reformat"]["asked"] == 1 and summary["reformat"]["accepted"] == 1
        assert server.stats["statuses"]["400"] == 1, "one rejection in the shard: the reformat asked in free text"
        assert server.stats["reformat_schemas"] == 0 and server.stats["response_format"] == {"json_schema": 1, "none": 3}
