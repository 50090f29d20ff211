"""The signals a run gives are true, end to end: structured output by default (free text where the
endpoint rejects the schema), judge answers without usable verdicts are failures that the next
run asks the judge again, and `export.keep: verified` without a judge is refused before any request."""

from __future__ import annotations

import json

import pytest

from chat_server import TRUNCATE, ChatServer
from workflow_helpers import read_output, snakemake, tagged_records, write_config, write_records

pytestmark = pytest.mark.workflow


def test_the_default_config_asks_every_request_with_the_schema_and_false_with_none(workdir, server):
    records = tagged_records(workdir, 4)
    records[0]["conversation"][0]["value"] += f" {TRUNCATE}"  # cut off: the repair is asked too
    write_records(workdir, records)
    write_config(workdir, server.base_url, verify={"enabled": True})
    snakemake(workdir)
    judged, reformats = sum(server.stats["judged"].values()), sum(server.stats["reformats"].values())
    assert judged >= 3 and server.stats["requests"] == 4 + 1 + reformats + judged, \
        "generation, one repair, the reformat of what is still not ok, the judge"
    assert server.stats["response_format"] == {"json_schema": server.stats["requests"]}
    stats = read_output(workdir, "stats.json")
    assert stats["structured_output"] == {"requested": "auto", "fell_back_shards": 0, "judge_requested": "auto",
                                          "judge_fell_back_shards": 0}

    asked = server.stats["requests"]
    write_config(workdir, server.base_url, run="free", structured_output=False)
    snakemake(workdir)
    assert server.stats["requests"] >= asked + 4 + 1, "generation and a repair (and reformats), as above"
    assert server.stats["response_format"] == {"json_schema": asked, "none": server.stats["requests"] - asked}, \
        "structured_output false: no request carries a response_format, the reformat's neither"
    assert read_output(workdir, "stats.json", run="free")["structured_output"]["requested"] is False


def test_an_endpoint_rejecting_the_schema_still_gives_the_whole_dataset(workdir):
    with ChatServer(reject_response_format=True) as server:
        write_records(workdir, tagged_records(workdir, 8))
        write_config(workdir, server.base_url, verify={"enabled": True})
        result = snakemake(workdir)
        assert server.stats["statuses"]["400"] == 2, "one rejection in each of the two shards, none from the judge"
        assert result.stderr.count("rejected the JSON schema (response_format)") == 2, "said once a shard"
        dataset = read_output(workdir, "dataset.jsonl")
        assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(8)]
        assert all(r["parse"]["status"] == "ok" and r["verify"]["status"] == "ok" for r in dataset)
        stats = read_output(workdir, "stats.json")
        assert stats["records_failed"] == 0 and stats["structured_output"] == {
            "requested": "auto", "fell_back_shards": 2, "judge_requested": "auto", "judge_fell_back_shards": 2}
        requests = server.stats["requests"]
        rerun = snakemake(workdir)
        assert "Nothing to be done" in rerun.stdout + rerun.stderr and server.stats["requests"] == requests


UNREADABLE = {
    "rec-1": "Both pairs look right to me.",
    "rec-3": json.dumps({"verdicts": [{"index": 0, "reason": "seen", "answerable": True, "correct": True},
                                      {"index": 99, "reason": "seen", "answerable": True, "correct": True}]}),
}


def test_a_judge_without_usable_verdicts_fails_the_run_and_the_rerun_asks_it_again(workdir):
    with ChatServer(judge_script=dict(UNREADABLE)) as server:
        write_records(workdir, tagged_records(workdir, 4))
        write_config(workdir, server.base_url, verify={"enabled": True}, export={"keep": "verified"})
        first = snakemake(workdir, check=False)
        assert first.returncode != 0, "2 of 4 records not verified: over max_failed_fraction"
        assert "2 answered but not verified by the judge" in first.stderr
        failed = read_output(workdir, "verify_failed.jsonl")
        assert [(f["id"], f["kind"], f["transient"]) for f in failed] == [
            ("r001", "unusable_verdicts", True), ("r003", "unusable_verdicts", True)]
        stats = read_output(workdir, "stats.json")
        assert (stats["verify_failed"], stats["failed_fraction"]) == (2, 0.5)
        assert stats["verify_failures_by_kind"] == {"unusable_verdicts": 2}
        assert stats["quality"]["judge_tokens"]["completion"] > 0
        generated = dict(server.stats["answered"])

        server.judge_script.clear()  # the judge answers properly now
        snakemake(workdir)
        assert server.stats["judged"] == {"rec-0": 1, "rec-1": 2, "rec-2": 1, "rec-3": 2}, "exactly those again"
        assert dict(server.stats["answered"]) == generated, "never the generator"
        assert read_output(workdir, "verify_failed.jsonl") == []
        assert all(r["verify"]["status"] == "ok" for r in read_output(workdir, "dataset.jsonl"))


def test_keep_verified_without_a_judge_is_refused_before_any_request(workdir, server):
    write_records(workdir, tagged_records(workdir, 2))
    write_config(workdir, server.base_url, export={"keep": "verified"})
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert "export.keep: verified" in result.stderr and "verify.enabled: true" in result.stderr
    assert server.stats["requests"] == 0 and server.stats["listings"] == 0
    assert not (workdir / "results").exists()
