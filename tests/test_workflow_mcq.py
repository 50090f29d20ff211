"""visual_mcq end to end: six records through snakemake against the test server."""

from __future__ import annotations

import re

import pytest

from chat_server import MCQ_ANSWERING, ChatServer
from workflow_helpers import read_output, snakemake, tagged_records, write_config, write_records

pytestmark = pytest.mark.workflow


def mcq_records(workdir, count: int) -> None:
    records = tagged_records(workdir, count)
    for n, record in enumerate(records):
        record["conversation"] = [{"from": "human", "value": f"<image>\nGenerate 5 MCQs based on the image (rec-{n})."}]
    write_records(workdir, records)


def rotations_seen(seen: list[dict]) -> list[tuple[int, int]]:
    """(options, images) of each rotation request the server saw, sorted."""
    return sorted((len(re.findall(r"^   - [A-H]\) ", entry["text"], re.M)), entry["images"])
                  for entry in seen if MCQ_ANSWERING in entry["text"])


def test_visual_mcq_keeps_what_needs_the_image_and_a_rerun_asks_nothing(workdir):
    mcq_records(workdir, 6)
    with ChatServer() as server:
        write_config(workdir, server.base_url, pipeline="visual_mcq", shard_size=4)
        snakemake(workdir)
        seen = list(server.stats["seen"])
        assert len(seen) == 6 * 41, "one generation and 2 x 5 x 4 rotations a record"
        assert rotations_seen(seen) == [(4, 0)] * 120 + [(5, 1)] * 120, "the blind requests carry no image"

        dataset = read_output(workdir, "dataset.jsonl")
        assert [record["id"] for record in dataset] == [f"r{n:03d}" for n in range(6)]
        for record in dataset:
            assert record["parse"]["status"] == "ok"
            assert len(record["mcq"]) == 4 and "qas" not in record
            for mcq in record["mcq"]:
                assert set(mcq) == {"question", "options", "answer", "visual_accuracy", "blind_accuracy"}
                assert sorted(mcq["options"]) == ["A", "B", "C", "D"] and mcq["answer"] in mcq["options"]
                assert (mcq["visual_accuracy"], mcq["blind_accuracy"]) == (1.0, 0.0)
        dropped = read_output(workdir, "mcq_dropped.jsonl")
        assert [(item["id"], item["reasons"], item["blind_accuracy"]) for item in dropped] == [
            (f"r{n:03d}", ["right_without_image"], 1.0) for n in range(6)]
        stats = read_output(workdir, "stats.json")
        assert stats["items"] == {"mcq": 24, "mcq_dropped": 6}
        assert stats["reasons"] == {"mcq_dropped": {"right_without_image": 6}}
        assert stats["fields"] == {"mcq": 6}

        conversations = read_output(workdir, "export/conversations.json")
        first = conversations[0]["conversations"]
        assert [turn["from"] for turn in first] == ["human", "gpt"] * 4
        assert first[0]["value"].startswith("<image>\nWhich fact belongs to rec-0 (question 2)?\nA. ")
        assert first[0]["value"].endswith("Answer with the option's letter from the given choices directly.")
        assert first[1]["value"] == dataset[0]["mcq"][0]["answer"]

        requests = server.stats["requests"]
        snakemake(workdir)
        assert server.stats["requests"] == requests, "a rerun sends nothing"


def test_visual_mcq_on_the_batch_api_one_batch_a_step(workdir):
    mcq_records(workdir, 2)
    with ChatServer() as server:
        write_config(workdir, server.base_url, pipeline="visual_mcq", backend="batch", mcq={"rotations": 1},
                     batch={"poll_s": 0.05, "max_poll_s": 0.1})
        snakemake(workdir)
        assert server.batch_stats["batches_created"] == 2, "the generation, then the rotations"
        assert rotations_seen(server.stats["seen"]) == [(4, 0)] * 10 + [(5, 1)] * 10
        dataset = read_output(workdir, "dataset.jsonl")
        assert [len(record["mcq"]) for record in dataset] == [4, 4]
        assert [item["id"] for item in read_output(workdir, "mcq_dropped.jsonl")] == ["r000", "r001"]
        created = server.batch_stats["batches_created"]
        snakemake(workdir)
        assert server.batch_stats["batches_created"] == created, "a rerun sends nothing"
