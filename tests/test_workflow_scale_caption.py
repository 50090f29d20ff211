"""``pipeline: scale_caption`` end to end against the test server (tests/scalecap_answers.py): the
unsupported sentence and the generic detail are dropped, the kept detail pairs are the records'
pairs (judged and exported like any), the text-only steps send no image, a rerun asks nothing."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chat_server import JUDGE_MARK
from scalecap_answers import FINAL, GENERIC, scalecap_answer
from vqaflow.pipelines.scale_caption import FIELDS
from workflow_helpers import read_output, snakemake, write_config, write_records

pytestmark = pytest.mark.workflow

IMAGES = ("bar_chart.png", "street_sign.png", "sunset.jpg")  # three sizes: every record's requests differ
KEPT = [("Describe more details about the man.", "He wears a blue apron."),
        ("Describe more details about the kitchen.", "It has white tiles."),
        ("Describe more details about the position of the man.", "The man is on the left.")]


def _kinds(seen: list[dict]) -> Counter:
    """The ScaleCap requests the server saw, by kind and number of images."""
    kinds = Counter()
    for entry in seen:
        found = None if JUDGE_MARK in entry["text"] else scalecap_answer(entry["text"], [])
        if found:
            kinds[found[0], entry["images"]] += 1
    return kinds


def test_scale_caption_keeps_grounded_sentences_and_details_and_a_rerun_asks_nothing(workdir, server):
    write_records(workdir, [{"id": f"r{n}", "image": [f"images/{name}"]} for n, name in enumerate(IMAGES)])
    write_config(workdir, server.base_url, pipeline="scale_caption", shard_size=2,
                 scale_caption={"max_questions": 2}, verify={"enabled": True})
    snakemake(workdir)
    dataset = read_output(workdir, "dataset.jsonl")
    assert [record["id"] for record in dataset] == ["r0", "r1", "r2"]
    for record in dataset:
        assert set(FIELDS) <= set(record) and record["parse"]["status"] == "ok"
        assert record["init_caption"].startswith("A man stands in a kitchen. A dragon flies above him.")
        assert {"text": "A dragon flies above him.", "verdict": "no"} in record["sentences"]
        assert "A dragon flies above him." not in record["golden_sentences"]
        assert len(record["golden_sentences"]) == 3
        assert record["questions"] == [
            "Describe more details about the man.", "Describe more details about the kitchen.",
            "Describe more details about the position of the man.",
            "Describe more details about the position of the kitchen."], "max_questions: 2 objects, with twins"
        assert [d["verdict"] for d in record["details"]] == ["yes", "yes", "yes", "no"]
        assert [(qa["question"], qa["answer"]) for qa in record["qas"]] == KEPT
        assert all(qa["verdict"]["correct"] for qa in record["qas"]), "the judge judged the kept pairs"
        assert record["final_caption"] == FINAL
    per_record = {("caption", 1): 1, ("sentence_check", 1): 4, ("questions", 0): 1, ("detail", 1): 4,
                  ("detail_check", 1): 4, ("fusion", 0): 1}
    seen = server.stats["seen"]
    assert _kinds(seen) == {kind: 3 * count for kind, count in per_record.items()}, "text-only steps send no image"
    fusions = [entry["text"] for entry in seen if "Basic Context:\n" in entry["text"]]
    assert all("He wears a blue apron." in text and GENERIC not in text and "dragon" not in text for text in fusions)
    stats = read_output(workdir, "stats.json")
    assert stats["qa_pairs"] == 9 and stats["quality"]["judged"] == 9
    conversations = json.loads((workdir / "results/test/export/conversations.json").read_text())
    asked = {turn["value"].rsplit("\n", 1)[-1] for chat in conversations for turn in chat["conversations"]
             if turn["from"] == "human"}
    assert asked == {question for question, _ in KEPT}, "the kept pairs are exported as conversations"

    requests = server.stats["requests"]
    rerun = snakemake(workdir)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
    assert server.stats["requests"] == requests
