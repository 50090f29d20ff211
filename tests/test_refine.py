"""The refiner on a corpus of realistic raw answers, and its helpers."""

import json
from pathlib import Path

import pytest

from vqaflow.pipelines import PIPELINES
from vqaflow.quality import answer_lines, filters, grounding, parse

CORPUS = json.loads((Path(__file__).parent / "data/refine_corpus.json").read_text())
# the pipelines whose answers are parsed into pairs (the others read their steps' answers themselves)
PARSED = {name: pipeline for name, pipeline in PIPELINES.items() if pipeline.reader is None}


def _want_article(case) -> bool:
    return PIPELINES[case["pipeline"]].want_article


def _parse(case):
    return parse.parse_answer(case["raw"], want_article=_want_article(case), finish_reason=case.get("finish_reason"))


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_corpus(case):
    parsed = _parse(case)
    assert parsed.context == (case["context"] if _want_article(case) else None)
    assert parsed.qas == case["qas"]
    assert parsed.status == case["status"]
    if "issues" in case:
        assert list(parsed.issues) == case["issues"]
    assert (parsed.status == "ok") is (not parsed.issues and bool(parsed.qas))


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_a_wrong_parse_is_never_ok(case):
    """Whatever the expectation says, a parse that differs from it must not claim ``ok``."""
    parsed = _parse(case)
    expected_context = case["context"] if _want_article(case) else None
    if (parsed.context, parsed.qas) != (expected_context, case["qas"]):
        assert parsed.status != "ok"


def test_corpus_covers_every_pipeline_and_status():
    assert len(CORPUS) >= 120
    assert {case["pipeline"] for case in CORPUS} == set(PARSED)
    assert {case["status"] for case in CORPUS} == {"ok", "partial", "none"}


@pytest.mark.parametrize(
    ("answer", "context", "grounded"),
    [
        ("1889", "It was completed in 1889.", True),
        ("Gustave  Eiffel's company", "designed by Gustave Eiffel's company.", True),
        ("wrought iron, Paris", "A wrought-iron tower in Paris.", True),
        ("wrought iron, London", "A wrought-iron tower in Paris.", False),
        ("188", "It was completed in 1889.", False),
        ("", "anything", False),
        ("明朝", "长城大部分建于明朝。", True),  # CJK: found within the words around it
        ("清朝", "长城大部分建于明朝。", False),
        ("陶瓷，书画", "藏品有陶瓷、书画和青铜器。", True),
    ],
)
def test_is_grounded(answer, context, grounded):
    assert grounding.is_grounded(answer, context) is grounded


ARTICLE = "The tower is 330 metres tall. It was completed in 1889 in Paris."


@pytest.mark.parametrize(("answer", "remark"), [
    ("330 metres — about as tall as an 81-storey building", True),
    ("1889. That is the year of the World's Fair", True),
    ("Paris, because the fair was held there", True),
    ("330 metres", False),  # found whole
    ("1889 (Paris)", False),  # found whole once punctuation is ignored
    ("Paris (la Ville Lumière)", False),  # a short gloss
    ("A steel giant", False),  # not found at all: a paraphrase, not a remark
])
def test_an_answer_whose_opening_alone_is_in_the_article_holds_a_remark(answer, remark):
    assert grounding.opens_grounded(answer, ARTICLE) is remark
    parsed = parse.parse_answer(f"{ARTICLE}\n\nQ: What about the tower?\nA: {answer}", want_article=True)
    assert ("explanation_in_answer" in parsed.issues) is remark


@pytest.mark.parametrize("pipeline", PARSED.values(), ids=list(PARSED))
def test_answer_schema_is_strict(pipeline):
    schema = pipeline.answer_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"])
    assert ("context" in schema["properties"]) is pipeline.want_article
    pair = schema["properties"]["qas"]["items"]
    assert pair["required"] == ["question", "answer"] and pair["additionalProperties"] is False


def test_structured_answers_read_directly_and_free_text_falls_back():
    structured = json.dumps({"context": "A red sign.", "qas": [{"question": "Colour?", "answer": "red"}]})
    parsed = parse.parse_answer(structured, want_article=True)
    assert (parsed.context, parsed.qas, parsed.status) == ("A red sign.", [{"question": "Colour?", "answer": "red"}], "ok")
    fallback = parse.parse_answer("Q: Colour?\nA: red", want_article=False)
    assert fallback.qas == [{"question": "Colour?", "answer": "red"}] and fallback.context is None


def test_finish_reason_length_is_truncated_and_never_ok():
    parsed = parse.parse_answer("Q: Colour?\nA: red\nQ: Shape?\nA: octagon", want_article=False,
                                 finish_reason="length")
    assert parsed.truncated and parsed.status == "partial" and "truncated" in parsed.issues
    assert parsed.qas == [{"question": "Colour?", "answer": "red"}]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"verdict": "yes"}', {"verdict": "yes"}),
        ('Sure:\n```json\n[1, 2]\n```\nDone.', [1, 2]),
        ('{"score": 4, "reason": "good"} I hope this helps', {"score": 4, "reason": "good"}),
        ('[citation needed] then {"a": "b"}', {"a": "b"}),
        ('{"qas": [{"question": "Who?", "answer": "Gus', {"qas": [{"question": "Who?"}]}),
        ("no json here", None),
    ],
)
def test_read_json(text, value):
    assert parse.read_json(text) == value


def test_classify_line_reads_label_structure():
    assert answer_lines.classify_line("**Q3.** What colour is it?").kind == "question"
    assert answer_lines.classify_line("问题1：塔在哪里？").text == "塔在哪里？"
    assert answer_lines.classify_line("- *Answer:* red") == answer_lines.Line("answer", "red")
    assert answer_lines.classify_line("Here is a Wikipedia-style article about the tower:").extra == "article"


@pytest.mark.parametrize("question", ["列出图中的物体", "Isn't the sky blue", "What colour is it", "图中的天空。",
                                      "The color of the car."])
def test_parser_and_filters_decide_not_a_question_alike(question):
    parsed = parse.parse_answer(f"Q: {question}\nA: red", want_article=False)
    flags = filters.flag_pair({"question": question, "answer": "red"}, None, 8)
    assert ("not_a_question" in parsed.issues) is ("not_a_question" in flags)
