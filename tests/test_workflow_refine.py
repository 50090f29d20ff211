"""Refinement and repair end to end, with scripted answers: a Chinese answer, a JSON answer cut
off by max_tokens (its complete pairs kept, honestly partial), and a cut-off answer repaired."""

from __future__ import annotations

import json

import pytest

from chat_server import ChatServer
from workflow_helpers import read_output, snakemake, tagged_records, write_config, write_records

pytestmark = pytest.mark.workflow

CHINESE = "问题1：图中有几个人？\n答案1：两个\n问题2：天空是什么颜色？\n答案2：蓝色"
LONG_PAIRS = [{"question": f"What is detail number {n} of the picture?", "answer": f"detail {n}"} for n in range(12)]
CUT_JSON = json.dumps({"qas": LONG_PAIRS * 2})  # longer than both budgets: cut twice
REPAIRABLE = "\n".join(f"Q: What is detail number {n} of the picture?\nA: detail {n}" for n in range(8))


def test_chinese_truncated_json_and_repaired_answers(workdir):
    script = {"rec-0": CHINESE, "rec-1": CUT_JSON, "rec-2": REPAIRABLE}
    assert 60 * 4 < len(REPAIRABLE) <= 120 * 4 < len(CUT_JSON)
    with ChatServer(script=script) as server:
        write_records(workdir, tagged_records(workdir, 3))
        write_config(workdir, server.base_url, pipeline="image_vqa", generation={"max_tokens": 60})
        snakemake(workdir)
        answered = dict(server.stats["answered"])
    chinese, cut, repaired = read_output(workdir, "dataset.jsonl")

    assert chinese["qas"] == [{"question": "图中有几个人？", "answer": "两个", "flags": []},
                              {"question": "天空是什么颜色？", "answer": "蓝色", "flags": []}]
    assert chinese["parse"]["status"] == "ok" and answered["rec-0"] == 1

    assert answered["rec-1"] == 2, "asked once more with twice the tokens"
    assert cut["parse"]["status"] == "partial" and cut["parse"]["truncated"]
    assert cut["generation"]["finish_reason"] == "length" and cut["generation"]["repaired"], \
        "the longer (still cut) answer parses better and is kept"
    kept = [{"question": qa["question"], "answer": qa["answer"]} for qa in cut["qas"]]
    assert kept and kept == (LONG_PAIRS * 2)[: len(kept)], "only complete pairs of the cut JSON"

    assert answered["rec-2"] == 2
    assert repaired["generation"]["repaired"] and repaired["generation"]["finish_reason"] == "stop"
    assert repaired["parse"]["status"] == "ok" and len(repaired["qas"]) == 8
    stats = read_output(workdir, "stats.json")
    assert stats["repaired"] == 2
    paid = repaired["generation"]["paid"]
    assert paid["requests"] == 2 and paid["completion_tokens"] > repaired["generation"]["completion_tokens"]
    assert stats["tokens"]["completion"] == sum(r["generation"].get("paid", r["generation"])["completion_tokens"]
                                                for r in (chinese, cut, repaired)), "both requests are counted"

    rerun = snakemake(workdir, "--forcerun", "generate_api")
    assert dict(server.stats["answered"]) == answered, "a rerun never repeats a repair the journal holds"
    assert "3 stored, 0 to ask" in (workdir / "results/test/logs/generate_api/shard-00000.log").read_text()
    assert rerun.returncode == 0
