"""The reformat pass: answers the parser cannot read are copied into JSON by a model, and the
code accepts the copy only when it is one (``quality/reformat_check.py``); through the shard's
request loop and journal, against the test server playing the reformatting model."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict

import pytest

from chat_server import ChatServer
from vqaflow.backends._factory import build_backend
from vqaflow.backends.base import FatalBackendError
from vqaflow.costs import Prices
from vqaflow.jsonl import read_jsonl, write_jsonl
from vqaflow.pipelines import PIPELINES
from vqaflow.quality.filters import FilterSettings
from vqaflow.quality.parse import Parse, parse_answer
from vqaflow.quality.reformat_check import check_reformat
from vqaflow.settings import prompt_settings
from vqaflow.stages.generate import generate_shard
from vqaflow.stages.merge import summarise
from vqaflow.stages.refine import refine_shard
from vqaflow.stages.reformat import ReformatSettings
from vqaflow.stages.repair import RepairSettings
from workflow_helpers import COLUMNS, api_settings_for, sampling, schema_defaults

NOTHING = Parse(None, [], "none", ("no_pairs",))
CAR = "Sure! Q) What colour is the car? >> red\nQ) How many wheels does it have? >> four"
CAR_COPY = {"qas": [{"question": "What colour is the car?", "answer": "red"},
                    {"question": "How many wheels does it have?", "answer": "four"}]}


def check(raw: str, reply, parsed: Parse = NOTHING, want_article: bool = False, finish: str = "stop",
          raw_truncated: bool = False):
    text = reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)
    return check_reformat(raw, text, finish, want_article, parsed, raw_truncated)


# -- the check --------------------------------------------------------------------------------------

def test_a_verbatim_copy_is_accepted_as_ok():
    verdict = check(CAR, CAR_COPY)
    assert verdict.reason is None and verdict.parse.status == "ok" and verdict.parse.issues == ()
    assert verdict.parse.qas == CAR_COPY["qas"]


def test_case_whitespace_quotes_and_end_punctuation_do_not_matter():
    raw = 'Q) "What colour  is the CAR"? >> Red.\nQ) How many wheels does it have? >> four!'
    copy = {"qas": [{"question": "What colour is the car?", "answer": "red"},
                    {"question": "how many wheels does it have", "answer": "Four"}]}
    assert check(raw, copy).parse.status == "ok"


def test_chinese_is_copied_character_for_character():
    raw = "《问题》汽车是什么颜色？《回答》红色。《问题》它有几个轮子？《回答》四个。"
    copy = {"qas": [{"question": "汽车是什么颜色？", "answer": "红色。"}, {"question": "它有几个轮子？", "answer": "四个。"}]}
    assert check(raw, copy).parse.qas == copy["qas"]
    invented = {"qas": [{"question": "汽车是什么颜色？", "answer": "蓝色。"}]}
    assert check(raw, invented).reason == "invented: 蓝色。"


@pytest.mark.parametrize(("reply", "reason"), [
    ({"qas": [*CAR_COPY["qas"], {"question": "Who drives the car?", "answer": "a woman"}]},
     "invented: Who drives the car?"),
    ({"qas": [{"question": "What color is the car?", "answer": "red"}]}, "invented: What color is the car?"),
    ({"qas": [{"question": "What colour is the car?", "answer": "bright red"}]}, "invented: bright red"),
    ("The car is red and it has four wheels.", "not_json"),
    ('{"qas": [{"question": "What colour is the car?", "answer": "red"}, {"question": "How ma', "not_json"),
    ({"pairs": CAR_COPY["qas"]}, "not_schema"),
    ({"qas": []}, "no_pairs"),
    ({"qas": [{"question": "What colour is the car?", "answer": ""}]}, "empty_field"),
    ({"qas": [{"question": "Q) What colour is the car?", "answer": "red"}, CAR_COPY["qas"][1]]},
     "not_clean: label_in_question"),
    ({"qas": CAR_COPY["qas"][:1]}, "left_out: Q) How many wheels does it have? >> four"),
])
def test_a_reformat_that_is_not_a_copy_is_rejected(reply, reason):
    verdict = check(CAR, reply)
    assert verdict.parse is None and verdict.reason == reason


def test_a_cut_off_reformat_is_rejected_even_when_it_reads():
    assert check(CAR, CAR_COPY, finish="length").reason == "cut_off"


def test_a_question_left_out_between_pairs_is_seen():
    raw = CAR.replace("\nQ) How", "\nQ) Who drives it? >> a woman\nQ) How")
    verdict = check(raw, CAR_COPY)
    assert verdict.reason == "left_out: Q) Who drives it? >> a woman"


@pytest.mark.parametrize("raw", [
    CAR + "\nQ) Who drives it?\n\nHope this helps!",
    "## Article\nThe car is a red sedan.\n\nWhat does its badge say?\n\n" + CAR,
])
def test_a_question_left_out_after_the_pairs_or_before_them_is_seen(raw):
    copy = {"context": "The car is a red sedan.", **CAR_COPY} if "Article" in raw else CAR_COPY
    verdict = check(raw, copy, want_article="Article" in raw)
    assert verdict.parse is None and verdict.reason.startswith("left_out: ")
    if "Article" not in raw:
        cut = check(raw.replace("\n\nHope this helps!", ""), copy, raw_truncated=True).parse
        assert (cut.status, cut.qas) == ("partial", copy["qas"]), "after the pairs of a cut-off answer: the cut pair"
    chatter = raw.replace("Q) Who drives it?", "Let me know if you want more questions?")
    assert check(chatter.replace("What does its badge say?", ""), copy, want_article="Article" in raw).reason is None


def test_a_remark_closing_an_answer_is_free_but_an_answer_run_into_the_next_question_is_a_guess():
    raw = "Q) What colour is the car? >> red — the paint is described as red\nQ) How many wheels does it have? >> four"
    assert check(raw, CAR_COPY).parse.status == "ok"
    assert check(raw.replace(" — the paint is described as red", " (an aside of more words)"), CAR_COPY).parse, \
        "a closing aside the copy left out"
    assert check(raw.replace(" — the paint is described as red", " glossy paint"), CAR_COPY).reason.startswith(
        "unread_text: ")
    run_on = "Q. what colour is the car\nA. red. how many wheels does it have? four"
    copy = {"qas": [{"question": "what colour is the car", "answer": "red"},
                    {"question": "how many wheels does it have?", "answer": "four"}]}
    assert check(run_on, copy).reason == "unmarked_split: A. red. how many wheels does it have? four"


def test_pairs_written_in_prose_are_not_accounted_for():
    raw = "One might ask what colour the car is; the answer is red. Another: how many wheels does it have? four."
    copy = {"qas": [{"question": "what colour the car is", "answer": "red"},
                    {"question": "how many wheels does it have?", "answer": "four"}]}
    assert check(raw, copy).reason.startswith("unread_text: the answer is")


def test_answers_split_out_of_one_run_of_text_are_a_guess():
    raw = "Questions: What colour is the car? How many wheels does it have?\nAnswers: red, four"
    assert check(raw, CAR_COPY).reason == "unmarked_split: Answers: red, four"
    assert check(raw.replace("red, four", "red\nfour"), CAR_COPY).parse.status == "ok", "a line each: marked"


def test_headings_and_remarks_between_pairs_are_free_chatter_around_them_too():
    raw = ("Here you go!\n\n### Colours\nQ) What colour is the car? >> red\nExplanation: the paint is red.\n"
           "### Parts\nQ) How many wheels does it have? >> four\n\nHope this helps.")
    assert check(raw, CAR_COPY).parse.status == "ok"


def test_a_reformat_never_has_fewer_pairs_than_the_parser_read():
    parsed = Parse(None, CAR_COPY["qas"], "partial", ("not_a_question",))
    raw = CAR.replace("\nQ) How many wheels does it have? >> four", " How many wheels does it have? >> four")
    verdict = check(raw, {"qas": [{"question": "What colour is the car?", "answer": "red How many wheels does it "
                                   "have? >> four"}]}, parsed)
    assert verdict.reason == "fewer_pairs"


def test_a_pair_the_parser_read_out_of_the_article_is_no_pair_the_copy_lost():
    raw = "Why Is the Car Red?\n\nThe car is a red sedan.\n\nQ: What colour is the car?\nA: red"
    parsed = parse_answer(raw, want_article=True)
    copy = {"context": "Why Is the Car Red?\n\nThe car is a red sedan.",
            "qas": [{"question": "What colour is the car?", "answer": "red"}]}
    assert len(parsed.qas) == 2 and parsed.status != "ok", "the parser read the title as a question"
    assert check(raw, copy, parsed, want_article=True).parse.status == "ok"
    assert check(raw, {**copy, "context": "The car is a red sedan."}, parsed, want_article=True).reason == "fewer_pairs"


def test_the_article_is_copied_line_by_line():
    raw = ("## Article\n**The Car**\n\nThe car is a red sedan with four wheels.\n\n## Pairs\n"
           "Q) What colour is the car? >> red\nQ) How many wheels does it have? >> four")
    copy = {"context": "The Car\n\nThe car is a red sedan with four wheels.", **CAR_COPY}
    verdict = check(raw, copy, want_article=True)
    assert verdict.parse.status == "ok" and verdict.parse.context == copy["context"]
    assert check(raw, {**copy, "context": "The car is a blue sedan."}, want_article=True).reason.startswith("invented")
    assert check(raw, {**copy, "context": ""}, want_article=True).reason == "no_article"


def test_a_cut_off_answer_stays_partial_without_its_cut_pair():
    raw = "Q) What colour is the car? >> red\nQ) How many wheels does it have? >> fo"
    copy = {"qas": [CAR_COPY["qas"][0], {"question": "How many wheels does it have?", "answer": "fo"}]}
    verdict = check(raw, copy, raw_truncated=True)
    assert verdict.parse.status == "partial" and verdict.parse.truncated and verdict.parse.issues == ("truncated",)
    assert verdict.parse.qas == CAR_COPY["qas"][:1]


def test_the_reformat_prompt_carries_the_raw_answer_and_the_schema():
    for pipeline in (p for p in PIPELINES.values() if p.reformats):
        system, text = pipeline.reformat_prompt(CAR)
        assert "copy" in system.lower() and f"<<<ANSWER\n{CAR}\nANSWER>>>" in text
        assert json.dumps(pipeline.answer_schema()) in text
        assert ("article" in text) is pipeline.want_article


# -- the pass, against the test server ---------------------------------------------------------------

LAMP = "Sure! Q) What is on the table? >> a lamp\nQ) Is it switched on? >> yes"
DOG = "Sure! Q) Where is the dog? >> on the sofa"
BIRDS = "Sure! Q) How many birds are there? >> three"
SCRIPT = {"rec-1": CAR, "rec-2": LAMP, "rec-3": DOG, "rec-4": BIRDS}
LONG = {"qas": [{"question": f"How many birds are on branch {n}?", "answer": "three"} for n in range(20)]}
REFORMATS = {
    CAR: CAR_COPY,  # verbatim
    LAMP: {"qas": [{"question": "What is on the table?", "answer": "a lamp"},
                   {"question": "What colour is the lamp?", "answer": "green"}]},  # invents a pair
    DOG: "The dog is on the sofa.",  # not JSON
    BIRDS: LONG,  # longer than reformat.max_tokens: cut off
}
BATCH = {"poll_s": 0.01, "max_poll_s": 0.05, "fallback": "none", "max_requests": 50_000, "max_file_mb": 190,
         "completion_window": "24h", "discount": 0.5, "keep_files": False}
NO_REPAIR = RepairSettings(enabled=False, max_tokens_factor=2, structured_output=False)


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def shard(tmp_path, count: int = 5):
    write_jsonl(tmp_path / "shard.jsonl", [
        {"id": f"r{n}", "index": n, "record": {"id": f"r{n}", "conversation": [
            {"from": "human", "value": f"Write question answer pairs rec-{n}."}]}} for n in range(count)])
    return prompt_settings({**schema_defaults(), "pipeline": "image_vqa"})


def generate(tmp_path, server: ChatServer, settings, reformat_api: dict | None = None, backend=None,
             repair=NO_REPAIR) -> dict:
    api = asdict(api_settings_for(server.base_url))
    backend = backend or build_backend("api", sampling(max_tokens=256), settings.max_pixels, api=api)
    reformat = ReformatSettings(True, "api", 80, api={**api, **(reformat_api or {})})
    return generate_shard(tmp_path / "shard.jsonl", tmp_path / "generated.jsonl", tmp_path / "failed.jsonl",
                          tmp_path / "journal.jsonl", settings, backend, repair, reformat=reformat)


def test_each_unreadable_answer_gets_one_text_only_reformat_and_a_rerun_asks_nothing(tmp_path):
    settings = shard(tmp_path)
    for raw in SCRIPT.values():
        assert parse_answer(raw, False).status != "ok", "a fixture answer the parser reads: pick another"
    assert len(json.dumps(LONG)) > 80 * 4 > max(len(json.dumps(REFORMATS[raw])) for raw in (CAR, LAMP, DOG))
    with ChatServer(script=SCRIPT, reformats=REFORMATS) as server:
        summary = generate(tmp_path, server, settings)
        assert server.stats["reformats"] == {raw: 1 for raw in SCRIPT.values()}, "one each, none for rec-0"
        assert server.stats["reformat_images"] == 0 and server.stats["reformat_schemas"] == 4
        assert summary["reformat"] == {"asked": 4, "accepted": 1, "rejected": 3, "failed": 0, "transient": 0}
        generated = {line["id"]: line for line in read_jsonl(tmp_path / "generated.jsonl")}

        asked = server.stats["requests"]
        generate(tmp_path, server, settings)
        assert server.stats["requests"] == asked, "a rerun asks nothing"
        assert {line["id"]: line for line in read_jsonl(tmp_path / "generated.jsonl")} == generated

    readable = generated["r0"]
    assert readable["parsed"]["status"] == "ok" and not readable["generation"]["reformatted"]
    assert "reformat" not in readable["generation"]

    copied = generated["r1"]
    assert copied["answer"] == CAR, "the raw answer stays"
    assert copied["parsed"] == {"context": None, "qas": CAR_COPY["qas"], "status": "ok", "issues": [],
                                "truncated": False, "unread": []}
    generation = copied["generation"]
    assert generation["reformatted"] and generation["reformat"]["status"] == "accepted"
    assert generation["paid"]["requests"] == 2
    assert generation["paid"]["prompt_tokens"] == generation["prompt_tokens"] + generation["reformat"]["prompt_tokens"]

    for rid, reason in (("r2", "invented: What colour is the lamp?"), ("r3", "not_json"), ("r4", "cut_off")):
        line = generated[rid]
        before = parse_answer(line["answer"], False, "stop")
        assert line["parsed"]["status"] == before.status and line["parsed"]["qas"] == before.qas, "never worse"
        assert line["parsed"]["issues"] == [*before.issues, "reformat_rejected"]
        assert not line["generation"]["reformatted"]
        assert line["generation"]["reformat"]["status"] == "rejected"
        assert line["generation"]["reformat"]["reason"] == reason

    refine_shard(tmp_path / "shard.jsonl", tmp_path / "generated.jsonl", tmp_path / "refined.jsonl", settings.pipeline, COLUMNS,
                 FilterSettings(**schema_defaults()["filters"]))
    refined = {row["id"]: row for row in read_jsonl(tmp_path / "refined.jsonl")}
    assert refined["r1"]["parse"]["status"] == "ok"
    assert [qa["question"] for qa in refined["r1"]["qas"]] == [qa["question"] for qa in CAR_COPY["qas"]]
    assert "reformat_rejected" in refined["r2"]["parse"]["issues"]


def test_after_a_repair_and_with_the_batch_api_the_reformat_asks_online(tmp_path):
    settings = shard(tmp_path, 2)
    with ChatServer(script=SCRIPT, reformats=REFORMATS) as server:
        api = asdict(api_settings_for(server.base_url))
        batch = build_backend("batch", sampling(max_tokens=256), settings.max_pixels, api=api,
                              batch=BATCH, state_path=tmp_path / "state.json")
        summary = generate(tmp_path, server, settings, backend=batch,
                           repair=RepairSettings(enabled=True, max_tokens_factor=2, structured_output=False))
        assert server.batch_stats["lines_per_batch"] == [2, 1], "the answers and the repair in batches"
        assert server.stats["reformats"] == {CAR: 1}, "the reformat online"
    assert summary["repaired"] == 0 and summary["reformat"]["accepted"] == 1
    (_, copied) = read_jsonl(tmp_path / "generated.jsonl")
    generation = copied["generation"]
    assert generation["backend"] == "batch" and generation["reformat"]["backend"] == "api"
    assert generation["paid"]["requests"] == 3

    refine_shard(tmp_path / "shard.jsonl", tmp_path / "generated.jsonl", tmp_path / "refined.jsonl", settings.pipeline, COLUMNS,
                 FilterSettings(**schema_defaults()["filters"]))
    stats = summarise([tmp_path / "refined.jsonl"], [], settings.pipeline, COLUMNS, Prices(1.0, 1.0, 0.5))
    reformat = generation["reformat"]
    assert stats["tokens"]["prompt"] - stats["tokens"]["batch_prompt"] == reformat["prompt_tokens"]
    assert stats["reformat"] == {"asked": 1, "accepted": 1, "rejected": 0, "failed": 0}


def test_a_reformat_endpoint_that_is_down_is_named_in_seconds(tmp_path):
    settings = shard(tmp_path, 2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    with ChatServer(script=SCRIPT) as server:
        started = time.monotonic()
        with pytest.raises(FatalBackendError, match=dead.replace(".", r"\.")):
            generate(tmp_path, server, settings, reformat_api={"base_url": dead})
        assert time.monotonic() - started < 15
        assert server.stats["reformats"] == {}
    answered = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert len(answered) == 2, "the answers are journaled: the rerun asks only the reformat"
