"""``pipeline: scale_caption`` end to end against the test server (tests/scalecap_answers.py): the
unsupported sentence and the generic detail are dropped, the kept detail pairs are the records'
pairs (judged and exported like any), the text-only steps send no image, a rerun asks nothing; a
run stopped at the last step asks only that step again; on the Batch API, one batch per step."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chat_server import JUDGE_MARK, ChatServer
from scalecap_answers import CAPTION, FINAL, GENERIC, scalecap_answer
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
    _records(workdir, 3)
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


def _records(workdir, count: int) -> None:
    write_records(workdir, [{"id": f"r{n}", "image": [f"images/{name}"]} for n, name in enumerate(IMAGES[:count])])


def test_a_run_stopped_before_the_fusion_asks_only_the_fusion_again(workdir):
    _records(workdir, 2)
    with ChatServer(faults={"500": 1.0}, fault_match="Basic Context:\n") as server:
        write_config(workdir, server.base_url, pipeline="scale_caption", scale_caption={"max_questions": 2},
                     api={"max_retries": 0})
        assert snakemake(workdir, check=False).returncode != 0, "every record failed at its fusion"
        failed = read_output(workdir, "failed.jsonl")
        assert len(failed) == 2 and all(f["transient"] and "of step fusion" in f["error"] for f in failed)

        server.faults["500"] = 0.0
        asked = len(server.stats["seen"])
        snakemake(workdir)
        assert [kind for kind, _ in _kinds(server.stats["seen"][asked:])] == ["fusion"], "only the fusion again"
        assert sum(_kinds(server.stats["seen"][asked:]).values()) == 2
        dataset = read_output(workdir, "dataset.jsonl")
        assert [r["final_caption"] for r in dataset] == [FINAL, FINAL]
        assert all(r["parse"]["status"] == "ok" for r in dataset)


def test_scale_caption_on_the_batch_api_makes_one_batch_per_step(workdir):
    _records(workdir, 2)
    with ChatServer() as server:
        write_config(workdir, server.base_url, pipeline="scale_caption", backend="batch",
                     scale_caption={"max_questions": 2}, batch={"poll_s": 0.05, "max_poll_s": 0.1})
        snakemake(workdir)
        assert server.batch_stats["lines_per_batch"] == [2, 8, 2, 8, 8, 2], \
            "captions, sentence checks, questions, details, detail checks, fusions"
        assert server.stats["requests"] == 0, "nothing asked online"
        dataset = read_output(workdir, "dataset.jsonl")
        assert all(r["init_caption"].startswith(CAPTION) and r["final_caption"] == FINAL for r in dataset)
        assert all([(qa["question"], qa["answer"]) for qa in r["qas"]] == KEPT for r in dataset)
        snakemake(workdir, "--forcerun", "generate_batch")
        assert server.batch_stats["batches_created"] == 6, "a rerun submits nothing"
