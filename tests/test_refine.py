"""The refiner on a corpus of realistic raw answers, and its helpers."""

import json
from pathlib import Path

import pytest

from vqaflow import refine

CORPUS = json.loads((Path(__file__).parent / "data/refine_corpus.json").read_text())


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_corpus(case):
    if case["pipeline"] == "context_vqa":
        parsed = refine.parse_context_vqa(case["raw"])
        assert parsed.context == case["context"]
    else:
        parsed = refine.parse_qa_pairs(case["raw"])
        assert parsed.context is None
    assert parsed.qas == case["qas"]
    assert parsed.status == case["status"]


def test_corpus_covers_every_pipeline_and_status():
    assert len(CORPUS) >= 40
    assert {case["pipeline"] for case in CORPUS} == {"context_vqa", "image_vqa", "image_qa"}
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
    ],
)
def test_is_grounded(answer, context, grounded):
    assert refine.is_grounded(answer, context) is grounded


@pytest.mark.parametrize("pipeline", ["context_vqa", "image_vqa", "image_qa"])
def test_answer_schema_is_strict(pipeline):
    schema = refine.answer_schema(pipeline)
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"])
    assert ("context" in schema["properties"]) is (pipeline == "context_vqa")
    pair = schema["properties"]["qas"]["items"]
    assert pair["required"] == ["question", "answer"] and pair["additionalProperties"] is False


def test_structured_answers_read_directly_and_free_text_falls_back():
    structured = json.dumps({"context": "A red sign.", "qas": [{"question": "Colour?", "answer": "red"}]})
    parsed = refine.parse_structured(structured, "context_vqa")
    assert (parsed.context, parsed.qas, parsed.status) == ("A red sign.", [{"question": "Colour?", "answer": "red"}], "ok")
    fallback = refine.parse_structured("Q: Colour?\nA: red", "image_vqa")
    assert fallback.qas == [{"question": "Colour?", "answer": "red"}]
