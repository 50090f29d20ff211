"""The reformat pass through `snakemake`: the preview counts it, the run keeps what the code
verified and nothing else, and neither the run after the preview nor a forced rerun asks again."""

from __future__ import annotations

import pytest

from chat_server import ChatServer
from test_reformat import CAR, CAR_COPY, REFORMATS, SCRIPT
from workflow_helpers import read_output, snakemake, tagged_records, write_config, write_records

pytestmark = pytest.mark.workflow


def test_preview_and_run_reformat_what_the_parser_cannot_read(workdir):
    write_records(workdir, tagged_records(workdir, 5))
    with ChatServer(script=SCRIPT, reformats=REFORMATS) as server:
        write_config(workdir, server.base_url, pipeline="image_vqa", preview={"records": 5},
                     reformat={"max_tokens": 80}, api={"price_input_per_mtok": 1.0, "price_output_per_mtok": 2.0})
        snakemake(workdir, "preview")
        found = read_output(workdir, "preview/estimate.json")
        measured = found["measured"]
        # 5 answers, then the 4 unreadable ones repaired (the same answer again) and reformatted once each
        assert measured["asked"] == 5 + 4 + 4 and measured["requests_per_record"]["mean"] == pytest.approx(13 / 5)
        assert measured["reformatted"]["value"] == pytest.approx(1 / 5)
        assert server.stats["reformats"] == {raw: 1 for raw in SCRIPT.values()}
        assert server.stats["reformat_images"] == 0
        requests = server.stats["requests"]

        snakemake(workdir)
        assert server.stats["requests"] == requests, "the run reuses the preview's reformats"
        snakemake(workdir, "--forcerun", "generate_api")
        assert server.stats["requests"] == requests, "a rerun asks nothing"

    dataset = {record["id"]: record for record in read_output(workdir, "dataset.jsonl")}
    assert dataset["r000"]["parse"]["status"] == "ok" and not dataset["r000"]["generation"]["reformatted"]
    copied = dataset["r001"]
    assert copied["vqa"] == CAR and copied["parse"] == {"status": "ok", "issues": [], "truncated": False, "unread": []}
    assert [{"question": qa["question"], "answer": qa["answer"]} for qa in copied["qas"]] == CAR_COPY["qas"]
    assert copied["generation"]["reformatted"] and copied["generation"]["paid"]["requests"] == 3
    for rid in ("r002", "r003", "r004"):
        record = dataset[rid]
        assert record["parse"]["status"] == "none" and record["parse"]["issues"][-1] == "reformat_rejected"
        assert record["generation"]["reformat"]["status"] == "rejected"

    stats = read_output(workdir, "stats.json")
    assert stats["reformat"] == {"asked": 4, "accepted": 1, "rejected": 3, "failed": 0}
    assert stats["parse_status"] == {"ok": 2, "partial": 0, "none": 3}
    assert stats["parse_issues"]["reformat_rejected"] == 3
    paid = [record["generation"].get("paid", record["generation"]) for record in dataset.values()]
    assert stats["tokens"]["prompt"] == sum(p["prompt_tokens"] for p in paid), "every reformat is counted"
    assert stats["tokens"]["prompt"] > sum(r["generation"]["prompt_tokens"] for r in dataset.values())
    assert stats["cost"] == pytest.approx((stats["tokens"]["prompt"] + 2 * stats["tokens"]["completion"]) / 1e6)
