"""The blind check end to end (verify.blind): one text-only request per record through the
verify stage, the pairs it answers right flagged answerable_without_image, counted in
stats.json, the report's funnel and quality page, dropped by export.drop_flags; a rerun of
the same command asks nothing."""

from __future__ import annotations

import json

import pytest

from chat_server import ChatServer
from workflow_helpers import read_output, snakemake, tagged_records, write_config, write_records

pytestmark = pytest.mark.workflow

FLAG = "answerable_without_image"


def test_blind_check_alone_flags_what_it_answers_right(workdir, server):
    records = tagged_records(workdir, 6)
    write_records(workdir, [*records, {**records[0], "id": "copy-0"}])
    write_config(workdir, server.base_url, pipeline="image_vqa", verify={"blind": True},
                 export={"drop_flags": [FLAG]})
    snakemake(workdir)
    assert server.stats["blind"] == {f"rec-{n}": 1 for n in range(6)}, \
        "one blind request per record (none for the copy of an identical request)"
    assert server.stats["blind_images"] == 0, "the blind request carries no image"
    assert not server.stats["judged"], "verify.enabled: false: the judge asks nothing"
    dataset = read_output(workdir, "dataset.jsonl")
    assert dataset[-1]["id"] == "copy-0" and dataset[-1]["blind"] == dataset[0]["blind"], "the copy has its original's"
    for record in dataset:
        right, wrong = record["qas"]
        assert right["question"].startswith("How many images") and right["answer"] == "1"
        assert right["blind_answer"] == "one" and FLAG in right["flags"], "answered right without the image"
        assert wrong["blind_answer"] == "42" and FLAG not in wrong["flags"]
        assert record["blind"]["status"] == "ok" and "verify" not in record and "verdict" not in right
    stats = read_output(workdir, "stats.json")
    flags = stats["quality"]["flags"]
    assert flags[FLAG] == 7 and flags["duplicate_question"] == 2, "the copy repeats rec-0's questions"
    assert stats["quality"]["flagged_pairs"] == 8, "7 flagged blind, the copy's other pair as a repeat"
    blind = stats["quality"]["blind"]
    assert {key: blind[key] for key in ("records", "pairs_asked", "answerable_without_image", "unread", "failed")} \
        == {"records": 7, "pairs_asked": 14, "answerable_without_image": 7, "unread": 0, "failed": 0}
    assert blind["tokens"]["prompt"] == 6 * dataset[0]["blind"]["tokens"]["prompt"], "a copy's tokens count once"
    assert stats["verify_failed"] == 0
    assert stats["structured_output"]["blind_requested"] == "auto" and "judge_requested" not in stats["structured_output"]
    assert read_output(workdir, "verify_failed.jsonl") == []
    summary = (workdir / "results/test/report/summary.html").read_text()
    assert "passing the rule filters and the blind check (pairs)</th><td>6<" in summary
    assert "accepted by the judge" not in summary
    quality_page = (workdir / "results/test/report/quality.html").read_text()
    assert "pairs answered right without the image (flag: answerable_without_image)</th><td>7<" in quality_page
    conversations = json.loads((workdir / "results/test/export/conversations.json").read_text())
    asked = [turn["value"] for chat in conversations for turn in chat["conversations"] if turn["from"] == "human"]
    assert len(asked) == 7 and not any("How many images" in question for question in asked), \
        "export.drop_flags drops the flagged pairs"

    requests = server.stats["requests"]
    snakemake(workdir)
    assert server.stats["requests"] == requests, "a rerun of the same command sends nothing"


def test_blind_check_beside_the_judge_sees_the_article_never_the_image(workdir):
    unreadable = {"rec-3": "Without the image I cannot say."}
    with ChatServer(blind_script=unreadable) as server:
        write_records(workdir, tagged_records(workdir, 4))
        write_config(workdir, server.base_url, pipeline="context_vqa", verify={"enabled": True, "blind": True})
        snakemake(workdir)
        assert server.stats["judged"] == server.stats["blind"] == {f"rec-{n}": 1 for n in range(4)}
        assert server.stats["blind_images"] == 0
        assert all("Article:\nThe subject of rec-" in text for text in server.stats["blind_texts"]), \
            "context_vqa: the article goes with the questions"
        dataset = {record["id"]: record for record in read_output(workdir, "dataset.jsonl")}
        flagged = {rid: [FLAG in qa["flags"] for qa in record["context_vqa"]["qas"]] for rid, record in dataset.items()}
        assert flagged == {"r000": [True, False], "r001": [True, False], "r002": [True, False], "r003": [False, False]}, \
            "an unreadable blind answer flags nothing"
        assert dataset["r003"]["blind"]["unread"] == 2
        assert all(record["verify"]["status"] == "ok" for record in dataset.values()), "the judge ran as before"
        stats = read_output(workdir, "stats.json")
        assert stats["quality"]["blind"]["unread"] == 2 and stats["quality"]["blind"]["answerable_without_image"] == 3
        assert stats["quality"]["judged"] == 8

        requests = server.stats["requests"]
        snakemake(workdir)
        assert server.stats["requests"] == requests, "a rerun sends nothing"
