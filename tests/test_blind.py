"""The blind check: its request text, reading blind answers back onto questions, deciding by
code which are right, and the verify stage's blind requests against the test server."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from chat_server import ChatServer
from vqaflow.jsonl import read_jsonl, write_jsonl
from vqaflow.pipelines import pipeline
from vqaflow.quality import blind
from vqaflow.settings import prompt_settings
from vqaflow.stages.jobs import verify_backends
from workflow_helpers import api_settings_for, schema_defaults


def test_blind_text_has_the_questions_and_the_article_but_no_answer():
    text = blind.blind_text(blind.BLIND_PROMPT_WITH_ARTICLE, ["Who built it?", "How tall is it?"],
                            "The tower was built by Eiffel.")
    assert text.startswith(blind.BLIND_PROMPT_WITH_ARTICLE.strip())
    assert "Article:\nThe tower was built by Eiffel." in text
    assert "Questions:\n1. Who built it?\n2. How tall is it?" in text
    assert text.index("Article:") < text.index("Questions:") < text.index('{"answers": [')
    assert "exactly 2 answers, indexes 1 to 2" in text
    only = blind.blind_text(blind.BLIND_PROMPT_IMAGE_ONLY, ["What colour is the car?"], None)
    assert "Article:" not in only and "exactly 1 answer, index 1." in only


def test_each_pipeline_has_its_blind_prompt():
    assert pipeline("context_vqa").blind_prompt == blind.BLIND_PROMPT_WITH_ARTICLE
    assert pipeline("image_vqa").blind_prompt == pipeline("image_qa").blind_prompt == blind.BLIND_PROMPT_IMAGE_ONLY
    assert "article" not in blind.BLIND_PROMPT_IMAGE_ONLY.lower()


def test_answer_schema_is_strict():
    item = blind.ANSWER_SCHEMA["properties"]["answers"]["items"]
    assert blind.ANSWER_SCHEMA["additionalProperties"] is False and item["additionalProperties"] is False
    assert item["required"] == ["index", "answer"]


@pytest.mark.parametrize("guess, answer, right", [
    ("Paris", "paris", True),
    ("  The Eiffel Tower.", "Eiffel tower", True),  # case, punctuation, a leading article
    ("four", "4", True),  # number words from zero to twenty
    ("4", "Four", True),
    ("1000", "1,000", True),  # a comma inside a number is not a list
    ("Paris", "Paris, France", True),  # every guessed item is one of the answer's
    ("red, white", "white, red, blue", True),
    ("red, green", "red, white", False),  # one guessed item is wrong
    ("Paris, Lyon, Nice", "Paris", False),  # a list of guesses is not right for one answer
    ("2 dogs", "2", False),  # items are compared whole
    ("not red", "red", False),
    ("", "red", False),
    ("...", "red", False),
    ("东京", "东京", True),
    ("蓝色、白色", "白色，蓝色", True),
])
def test_matches_compares_normalised_items(guess, answer, right):
    assert blind.matches(guess, answer) is right


def test_yes_no_answers_are_not_asked():
    assert blind.yes_no("Yes.") and blind.yes_no("no") and blind.yes_no("FALSE") and blind.yes_no("是")
    assert not blind.yes_no("No parking") and not blind.yes_no("yes, two") and not blind.yes_no("red")


def test_read_answers_from_the_schema_and_its_variants():
    schema = json.dumps({"answers": [{"index": 2, "answer": "blue"}, {"index": 1, "answer": "Paris"}]})
    assert blind.read_answers(schema, 2) == (["Paris", "blue"], [])
    fenced = '```json\n{"answers": [{"index": "1", "answer": 4}, {"index": 2, "answer": ["red", "white"]}]}\n```'
    assert blind.read_answers(fenced, 2) == (["4", "red, white"], [])
    assert blind.read_answers('["Paris", "blue"]', 2) == (["Paris", "blue"], ["missing_index"])
    assert blind.read_answers('{"1": "Paris", "2": "blue"}', 2) == (["Paris", "blue"], [])
    assert blind.read_answers('{"q1": "Paris", "#2": "blue"}', 2) == (["Paris", "blue"], []), "indices as the judge reads them"
    assert blind.read_answers('{"index": 1, "answer": "Paris"}', 1) == (["Paris"], [])


def test_read_answers_from_numbered_lines():
    text = "Sure, here are my guesses:\n1. Paris\n2) **blue**\nAnswer 3: 42 metres\n4. How tall? 30"
    answers, issues = blind.read_answers(text, 4)
    assert answers == ["Paris", "blue", "42 metres", None], "an answer repeating the question is not read"
    assert issues == ["numbered_lines", "missing_answers"]


@pytest.mark.parametrize("text, answers, issue", [
    ("I cannot see the image.", [None, None], "numbered_lines"),
    ('["Paris"]', [None, None], "missing_index"),  # which question it answers would be a guess
    ('{"answers": [{"index": 0, "answer": "a"}, {"index": 3, "answer": "b"}]}', [None, None], "bad_index"),
    ('{"answers": [{"index": 1, "answer": "a"}, {"index": 1, "answer": "b"}, {"index": 2, "answer": "c"}]}',
     [None, "c"], "duplicate_index"),
    ('{"answers": [{"index": 1, "answer": ""}, {"index": 2, "answer": null}]}', [None, None], "missing_answers"),
])
def test_unreadable_answers_are_none_never_a_guess(text, answers, issue):
    read, issues = blind.read_answers(text, 2)
    assert read == answers and issue in issues and "missing_answers" in issues


def test_a_cut_off_answer_loses_its_last_answer():
    cut = '{"answers": [{"index": 1, "answer": "Paris"}, {"index": 2, "answer": "4'
    assert blind.read_answers(cut, 2, cut_off=True) == (["Paris", None], ["cut_off", "missing_answers"])
    assert blind.read_answers("1. Paris\n2. 4", 2, cut_off=True)[0] == ["Paris", None]


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


QUESTIONS = [
    {"question": "How many images does rec-{n} have?", "answer": "1", "flags": []},
    {"question": "Which seed produced rec-{n}?", "answer": "7", "flags": ["long_answer"]},
    {"question": "Is it raining in rec-{n}?", "answer": "Yes", "flags": []},
]


def check_blind(tmp_path, server: ChatServer, count: int = 3, judge: bool = False,
                questions: list[dict] = QUESTIONS):
    """verify_shard on ``count`` image_vqa records of ``questions`` with the blind check (and the
    judge when ``judge``) against ``server``: (counts, verified records, verify_failed entries)."""
    from vqaflow.stages.verify import verify_shard

    tmp_path.mkdir(parents=True, exist_ok=True)
    settings = prompt_settings({**schema_defaults(), "pipeline": "image_vqa"})
    write_jsonl(tmp_path / "shard-00000.jsonl", [{"id": f"r{n}", "index": n, "record": {"id": f"r{n}"}}
                                                 for n in range(count)])
    write_jsonl(tmp_path / "refined.jsonl", [
        {"id": f"r{n}", "qas": [{**qa, "question": qa["question"].format(n=n)} for qa in questions]}
        for n in range(count)])
    params = {"enabled": judge, "blind": True, "backend": "api", "api": asdict(api_settings_for(server.base_url)),
              "vllm": None, "max_tokens": 256, "structured_output": "auto"}
    judging, blinding = verify_backends(params, settings.max_pixels)
    counts = verify_shard(tmp_path / "refined.jsonl", tmp_path / "shard-00000.jsonl", tmp_path / "verified.jsonl",
                          tmp_path / "failed.jsonl", tmp_path / "journal.jsonl", settings, judging,
                          settings.pipeline.judge_prompt, "test-vlm", auto=True, blind=blinding)
    return counts, list(read_jsonl(tmp_path / "verified.jsonl")), list(read_jsonl(tmp_path / "failed.jsonl"))


def test_blind_check_flags_the_pairs_answered_right_and_a_rerun_asks_nothing(tmp_path, api_key):
    with ChatServer(blind_script={"rec-2": "I would need to see the image."}) as server:
        counts, verified, failed = check_blind(tmp_path, server)
        assert server.stats["blind"] == {"rec-0": 1, "rec-1": 1, "rec-2": 1} and server.stats["blind_images"] == 0
        assert not server.stats["judged"], "the judge is off: only the blind check asks"
        asked = sorted(text.split("Questions:\n")[1].split("\n\n")[0] for text in server.stats["blind_texts"])
        assert asked == [f"1. How many images does rec-{n} have?\n2. Which seed produced rec-{n}?" for n in range(3)], \
            "the questions alone: no answer, no yes/no pair"
        assert failed == [] and counts["blind_right"] == 2 and counts["blind_unread"] == 2
        right, wrong, yes_no = verified[0]["qas"]
        assert right["flags"] == [blind.FLAG] and right["blind_answer"] == "one"
        assert wrong["flags"] == ["long_answer"] and wrong["blind_answer"] == "42"
        assert yes_no["flags"] == [] and "blind_answer" not in yes_no
        assert verified[0]["blind"]["status"] == "ok" and "verify" not in verified[0]
        assert {k: verified[0]["blind"][k] for k in ("asked", "right", "unread", "yes_no")} == \
            {"asked": 2, "right": 1, "unread": 0, "yes_no": 1}
        unread = verified[2]
        assert [qa["flags"] for qa in unread["qas"]] == [[], ["long_answer"], []], "an unread answer flags nothing"
        assert unread["blind"]["unread"] == 2 and "numbered_lines" in unread["blind"]["issues"]

        requests = server.stats["requests"]
        again, verified_again, _ = check_blind(tmp_path, server)
        assert server.stats["requests"] == requests, "a rerun asks nothing (unread answers included)"
        assert verified_again == verified


def test_blind_check_beside_the_judge_in_free_text_where_the_schema_is_rejected(tmp_path, api_key):
    with ChatServer(reject_response_format=True) as server:
        counts, verified, failed = check_blind(tmp_path, server, count=2, judge=True)
        assert failed == [] and counts["verified"] == 2 and counts["blind_right"] == 2
        assert server.stats["judged"] == {"rec-0": 1, "rec-1": 1} and sum(server.stats["blind"].values()) == 2
        assert all(r["blind"].get("free_text_fallback") for r in verified)
        assert [qa["flags"] for qa in verified[0]["qas"]] == [[blind.FLAG], ["long_answer"], []]
        assert verified[0]["qas"][0]["verdict"]["correct"] is True, "the judge's verdicts are there too"


def test_a_failed_blind_request_fails_its_record_like_the_judge(tmp_path, api_key):
    overflow = [{**QUESTIONS[0], "question": QUESTIONS[0]["question"] + " [[context-overflow]]"}, *QUESTIONS[1:]]
    with ChatServer() as server:
        counts, verified, failed = check_blind(tmp_path / "permanent", server, count=1, questions=overflow)
    assert [(f["id"], f["check"], f["transient"]) for f in failed] == [("r0", "blind", False)]
    assert counts["failed"] == 1 and counts["transient"] == 0
    assert verified[0]["blind"]["status"] == "failed" and verified[0]["blind"]["kind"] == failed[0]["kind"]
    assert all(blind.FLAG not in qa["flags"] and "blind_answer" not in qa for qa in verified[0]["qas"])

    with ChatServer(faults={"500": 1.0}) as server:
        counts, verified, failed = check_blind(tmp_path / "transient", server, count=2)
    assert counts["transient"] == 2 and all(f["transient"] and f["check"] == "blind" for f in failed)
    with ChatServer() as server:
        counts, verified, failed = check_blind(tmp_path / "transient", server, count=2)
        assert sum(server.stats["blind"].values()) == 2, "the next run asks a transient failure again"
    assert failed == [] and counts["blind_right"] == 2


def test_stats_count_the_blind_check_and_a_record_once_when_both_checks_failed(tmp_path):
    from vqaflow.config_check import gate_message
    from vqaflow.costs import Prices
    from vqaflow.stages.merge import summarise
    from workflow_helpers import COLUMNS

    def record(rid: str, flags: list[str], judge: dict | None, checked: dict, copy: bool = False) -> dict:
        generation = {"prompt_tokens": 1, "completion_tokens": 1, **({"duplicate_of": "r0"} if copy else {})}
        made = {"id": rid, "answer": "", "generation": generation, "blind": checked,
                "parse": {"status": "ok", "issues": [], "truncated": False, "unread": []},
                "qas": [{"question": "q?", "answer": "a", "flags": flags}]}
        return {**made, "verify": judge} if judge else made

    ok = {"status": "ok", "asked": 1, "right": 1, "unread": 0, "yes_no": 0, "tokens": {"prompt": 10, "completion": 2}}
    failed = {"status": "failed", "kind": "retries_exhausted", "transient": True}
    write_jsonl(tmp_path / "final.jsonl", [
        record("r0", [blind.FLAG], {"status": "ok", "tokens": {"prompt": 5, "completion": 1}}, ok),
        record("r1", [blind.FLAG], {"status": "ok"}, ok, copy=True),  # a copy: its tokens were paid by r0
        record("r2", [], {"status": "failed", "kind": "unusable_verdicts", "transient": True}, failed),
        record("r3", [], None, {**failed, "kind": "prompt", "transient": False}),
    ])
    stats = summarise([tmp_path / "final.jsonl"], [], pipeline("image_vqa"), COLUMNS, Prices(1.0, 1.0, 0.5),
                      structured={"requested": "auto", "judge": "auto", "blind": "auto"})
    assert stats["verify_failed"] == 2 and stats["failed_fraction"] == 0.5, "r2 failed both checks: counted once"
    assert stats["verify_failures_by_kind"] == {"unusable_verdicts": 1}
    assert stats["blind_failures_by_kind"] == {"prompt": 1, "retries_exhausted": 1}
    assert stats["failures_transient"] == 1
    assert stats["quality"]["blind"] == {
        "records": 2, "pairs_asked": 2, "answerable_without_image": 2, "unread": 0, "yes_no_not_asked": 0,
        "failed": 2, "tokens": {"prompt": 10, "completion": 2}, "cost": 1.2e-05}
    assert stats["quality"]["flags"] == {blind.FLAG: 2}
    assert stats["structured_output"]["blind_requested"] == "auto"
    message = gate_message(stats, 0.05, "d", "f", "v")
    assert "not verified by the judge or the blind check" in message and "blind prompt 1" in message
