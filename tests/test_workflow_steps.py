"""Pipelines of several steps and pipelines without pairs, through the whole workflow against the
local chat server: image_caption (one request per record, a caption, no pairs) and
image_vqa_two_step (a question, then its answer: two requests per record); a rerun asks nothing,
and a run stopped between the steps asks only the unfinished step again."""

from __future__ import annotations

import json

import polars as pl
import pytest

from chat_server import SHOWN_QUESTION, ChatServer
from workflow_helpers import (
    journal_entries,
    killed_when,
    prompted_records,
    read_output,
    snakemake,
    write_config,
    write_records,
)

pytestmark = pytest.mark.workflow

QUESTION_TURN = "Write one question about this image (rec-{n}). Only output the question content."


def test_image_caption_gives_every_record_a_caption_with_one_request(workdir):
    write_records(workdir, prompted_records(workdir, 6, "Describe the image (rec-{n})."))
    with ChatServer() as server:
        write_config(workdir, server.base_url, pipeline="image_caption", verify={"enabled": True})
        snakemake(workdir)
        assert server.stats["requests"] == 6, "one request per record, no judge request (no pairs)"
        assert all(seen["images"] == 1 for seen in server.stats["seen"])

        dataset = read_output(workdir, "dataset.jsonl")
        assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(6)]
        for n, record in enumerate(dataset):
            assert record["caption"].startswith(f"A test picture of rec-{n} with 1 image(s)")
            assert record["parse"] == {"status": "ok", "issues": [], "truncated": False, "unread": []}
            assert "qas" not in record and record["verify"]["status"] == "skipped"
        stats = read_output(workdir, "stats.json")
        assert stats["fields"] == {"caption": 6} and stats["qa_pairs"] == 0
        assert stats["parse_status"]["ok"] == 6

        chats = read_output(workdir, "export/conversations.json")
        assert chats[0]["conversations"] == [{"from": "human", "value": "<image>\nDescribe the image."},
                                             {"from": "gpt", "value": dataset[0]["caption"]}]
        table = pl.read_parquet(workdir / "results/test/export/dataset.parquet")
        assert table.columns == ["id", "images", "caption"] and table["caption"].to_list() == [
            r["caption"] for r in dataset]
        summary = (workdir / "results/test/report/summary.html").read_text()
        assert "exported (records)</th><td>6<" in summary and "records with caption</th><td>6<" in summary

        snakemake(workdir, "--forcerun", "generate_api")
        assert server.stats["requests"] == 6, "a rerun asks nothing"


def test_image_vqa_two_step_asks_a_question_then_answers_it(workdir):
    write_records(workdir, prompted_records(workdir, 6, QUESTION_TURN))
    with ChatServer() as server:
        write_config(workdir, server.base_url, pipeline="image_vqa_two_step", verify={"enabled": True})
        snakemake(workdir)
        seen = server.stats["seen"]
        questions = [s for s in seen if "Only output the question content" in s["text"]]
        answers = [s for s in seen if s["text"].startswith("You are a helpful assistant.\n" + SHOWN_QUESTION)]
        judged = [s for s in seen if '{"verdicts": [' in s["text"]]
        assert (len(questions), len(answers), len(judged), len(seen)) == (6, 6, 6, 18)
        assert all(s["images"] == 1 for s in seen)

        dataset = read_output(workdir, "dataset.jsonl")
        for n, record in enumerate(dataset):
            question = f"{SHOWN_QUESTION}rec-{n}?"
            assert (record["question"], record["answer"]) == (question, f"rec-{n} shows 1 image(s): "
                                                              + record["answer"].split(": ", 1)[1])
            assert any(s["text"] == "You are a helpful assistant.\n" + question for s in answers), \
                "the second request quotes the first's question"
            (pair,) = record["qas"]
            assert (pair["question"], pair["answer"]) == (question, record["answer"])
            assert pair["flags"] == [] and pair["verdict"]["correct"], "the judge saw the pair"
            assert record["vqa"] == record["answer"] and record["parse"]["status"] == "ok"
            assert record["generation"]["paid"]["requests"] == 2
        stats = read_output(workdir, "stats.json")
        assert stats["fields"] == {"question": 6, "answer": 6} and stats["qa_pairs"] == 6
        assert stats["quality"]["accepted"] == 6
        chats = read_output(workdir, "export/conversations.json")
        assert chats[0]["conversations"][0]["value"] == f"<image>\n{SHOWN_QUESTION}rec-0?"

        requests = server.stats["requests"]
        snakemake(workdir, "--forcerun", "generate_api")
        assert server.stats["requests"] == requests, "a rerun asks nothing"


def test_a_run_stopped_between_the_steps_asks_only_the_second_step_again(workdir):
    write_records(workdir, prompted_records(workdir, 6, QUESTION_TURN))
    with ChatServer(faults={"500": 1.0}, fault_match=SHOWN_QUESTION) as server:
        write_config(workdir, server.base_url, pipeline="image_vqa_two_step", api={"max_retries": 0})
        first = snakemake(workdir, check=False)
        assert first.returncode != 0, "every record failed at its second step"
        failed = read_output(workdir, "failed.jsonl")
        assert len(failed) == 6 and all(f["transient"] for f in failed)
        assert server.stats["statuses"]["500"] == 6
        journal = [json.loads(line) for path in sorted((workdir / "results/test/journal").glob("shard-*.jsonl"))
                   for line in path.read_text().splitlines()]
        assert len(journal) == 6 and all(SHOWN_QUESTION in entry["answer"] for entry in journal), \
            "the questions are journaled"

        server.faults["500"] = 0.0
        asked = len(server.stats["seen"])
        snakemake(workdir)
        again = server.stats["seen"][asked:]
        assert len(again) == 6 and all(s["text"].startswith("You are a helpful assistant.\n" + SHOWN_QUESTION)
                                       for s in again), "only the second step is asked again"
        dataset = read_output(workdir, "dataset.jsonl")
        assert len(dataset) == 6 and all(r["answer"] and r["parse"]["status"] == "ok" for r in dataset)
        assert read_output(workdir, "failed.jsonl") == []


def test_a_kill_between_the_steps_asks_only_the_unfinished_requests(workdir):
    count = 12
    write_records(workdir, prompted_records(workdir, count, QUESTION_TURN))
    with ChatServer(latency=0.3) as server:
        write_config(workdir, server.base_url, pipeline="image_vqa_two_step", shard_size=count,
                     api={"max_concurrency": 2})

        def questions(entries) -> int:
            return sum(SHOWN_QUESTION in entry.get("answer", "") for entry in entries)

        killed_when(workdir, lambda: questions(journal_entries(workdir)) == count)
        before = journal_entries(workdir)
        answered_before = len(before) - questions(before)
        assert answered_before < count, "killed in the second step"
        assert not (workdir / "results/test/dataset.jsonl").exists()

        asked = len(server.stats["seen"])
        snakemake(workdir, "--unlock")
        snakemake(workdir, "--rerun-incomplete")
        again = server.stats["seen"][asked:]
        assert not [s for s in again if "Only output the question content" in s["text"]], \
            "no question is asked again"
        assert len(again) == count - answered_before, "every answer journaled before the kill is kept"
        dataset = read_output(workdir, "dataset.jsonl")
        assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(count)]
        assert all(r["parse"]["status"] == "ok" and r["generation"]["paid"]["requests"] == 2 for r in dataset)


def test_the_preview_prices_two_requests_per_record_and_the_run_reuses_them(workdir):
    write_records(workdir, prompted_records(workdir, 12, QUESTION_TURN))
    with ChatServer() as server:
        write_config(workdir, server.base_url, pipeline="image_vqa_two_step", shard_size=6, preview={"records": 4},
                     api={"price_input_per_mtok": 0.15, "price_output_per_mtok": 0.6})
        snakemake(workdir, "preview")
        found = read_output(workdir, "preview/estimate.json")
        assert server.stats["requests"] == found["measured"]["asked"] == 8
        assert found["measured"]["requests_per_record"]["mean"] == 2
        assert found["projected"]["requests"]["value"] == 24
        assert "question: 12 in flight, answer: 12 in flight" in found["wall_time"], "2 jobs x 6 records"
        snakemake(workdir)
        assert server.stats["requests"] == 24, "the run asks the other 8 records' 16 requests, not the preview's"
        stats = read_output(workdir, "stats.json")
        tokens = stats["tokens"]["prompt"]
        interval = found["projected"]["prompt_tokens"]
        assert interval["low"] <= tokens <= interval["high"]


def test_two_steps_on_the_batch_api_make_one_batch_per_step(workdir):
    write_records(workdir, prompted_records(workdir, 4, QUESTION_TURN))
    with ChatServer() as server:
        write_config(workdir, server.base_url, pipeline="image_vqa_two_step", backend="batch",
                     batch={"poll_s": 0.05, "max_poll_s": 0.1})
        snakemake(workdir)
        assert server.batch_stats["lines_per_batch"] == [4, 4], "the questions, then the answers"
        assert server.stats["requests"] == 0, "nothing asked online"
        dataset = read_output(workdir, "dataset.jsonl")
        assert [r["question"] for r in dataset] == [f"{SHOWN_QUESTION}rec-{n}?" for n in range(4)]
        assert all(r["answer"].startswith(f"rec-{n} shows 1 image(s)") for n, r in enumerate(dataset))
        assert all(r["generation"]["backend"] == "batch" for r in dataset)
        assert read_output(workdir, "stats.json")["tokens"]["batch_prompt"] > 0
        snakemake(workdir, "--forcerun", "generate_batch")
        assert server.batch_stats["batches_created"] == 2, "a rerun submits nothing"
