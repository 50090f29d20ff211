"""The quality layer end to end: a judge model checks every pair, identical requests are asked
once, near-duplicate images are skipped, and rule flags are counted."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from chat_server import ChatServer
from workflow_helpers import (
    DEMO_IMAGES,
    image_names,
    read_output,
    snakemake,
    tagged_records,
    write_config,
    write_records,
)

pytestmark = pytest.mark.workflow


@pytest.mark.parametrize("pipeline", ["context_vqa", "image_vqa", "image_qa"])
def test_judge_checks_every_pair_with_one_request_per_record(workdir, server, pipeline):
    write_records(workdir, tagged_records(workdir, 6))
    write_config(workdir, server.base_url, pipeline=pipeline, verify={"enabled": True},
                 export={"keep": "verified"})
    snakemake(workdir)
    assert server.stats["judged"] == {f"rec-{n}": 1 for n in range(6)}, "one judge request per record"
    dataset = read_output(workdir, "dataset.jsonl")
    for record in dataset:
        assert record["verify"]["status"] == "ok" and record["verify"]["model"] == "test-vlm"
        qas = record["context_vqa"]["qas"] if pipeline == "context_vqa" else record["qas"]
        by_question = {qa["question"].split()[0]: qa["verdict"] for qa in qas}
        assert by_question["How"] == {"answerable": True, "correct": True, "reason": "supported by the image"}
        assert by_question["Which"]["answerable"] is False
    quality = read_output(workdir, "stats.json")["quality"]
    assert quality["judged"] == 12 and quality["accepted"] == 6
    assert quality["rejected"] == {"not_answerable": 6}
    assert quality["judge_tokens"]["prompt"] > 0
    conversations = json.loads((workdir / "results/test/export/conversations.json").read_text())
    asked = [turn["value"].rsplit("\n", 1)[-1] for chat in conversations for turn in chat["conversations"]
             if turn["from"] == "human"]
    assert asked and not any("seed" in question for question in asked), "keep: verified drops rejected pairs"
    assert read_output(workdir, "verify_failed.jsonl") == []

    requests = server.stats["requests"]
    write_config(workdir, server.base_url, pipeline=pipeline, verify={"enabled": True, "max_tokens": 600},
                 export={"keep": "verified"})
    snakemake(workdir)
    assert sum(server.stats["judged"].values()) == 12 and server.stats["requests"] == requests + 6, \
        "changing only verify settings re-asks the judge, never generation"


def test_judge_on_another_model_and_endpoint(workdir, server):
    with ChatServer(models=("test-judge",), key="judge-key") as judge:
        write_records(workdir, tagged_records(workdir, 4))
        write_config(workdir, server.base_url, verify={
            "enabled": True, "model": "test-judge", "api": {"base_url": judge.base_url, "key_env": "JUDGE_KEY"},
        })
        snakemake(workdir, env={"JUDGE_KEY": "judge-key"})
        assert dict(judge.stats["judge_models"]) == {"test-judge": 4}
    assert not server.stats["judged"], "the generator's endpoint judged nothing"
    assert {r["verify"]["model"] for r in read_output(workdir, "dataset.jsonl")} == {"test-judge"}


def test_identical_requests_are_asked_once(workdir, server):
    records = tagged_records(workdir, 3)
    copies = [{**records[0], "id": "copy-a"}, {**records[1], "id": "copy-b"}]
    write_records(workdir, records + copies)
    write_config(workdir, server.base_url, shard_size=10)
    snakemake(workdir)
    assert server.stats["answered"] == {"rec-0": 1, "rec-1": 1, "rec-2": 1}
    dataset = {r["id"]: r for r in read_output(workdir, "dataset.jsonl")}
    assert dataset["copy-a"]["generation"]["duplicate_of"] == "r000"
    assert dataset["copy-a"]["vqa"] == dataset["r000"]["vqa"]
    originals = [r for r in dataset.values() if "duplicate_of" not in r["generation"]]
    tokens = read_output(workdir, "stats.json")["tokens"]
    assert tokens["prompt"] == sum(r["generation"]["prompt_tokens"] for r in originals), "a copy costs nothing"


def test_perceptual_dedup_skips_a_resized_reencoded_copy(workdir, server):
    with Image.open(DEMO_IMAGES / "lighthouse.png") as source:
        small = source.convert("RGB").resize((source.width // 2, source.height // 2))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=60)
    (workdir / "images" / "lighthouse-copy.jpg").write_bytes(buffer.getvalue())
    names = image_names(workdir)
    records = [{"id": name, "image": f"images/{name}"} for name in names]
    write_records(workdir, records)
    write_config(workdir, server.base_url, pipeline="image_vqa", dedup={"images": "perceptual"})
    snakemake(workdir)
    (duplicate,) = read_output(workdir, "duplicates.jsonl")
    assert {duplicate["id"], duplicate["duplicate_of"]} == {"lighthouse.png", "lighthouse-copy.jpg"}
    hashed = [read_output(workdir, f"dedup/hashes/{shard}.jsonl") for shard in ("shard-00000", "shard-00001")]
    assert [line["id"] for lines in hashed for line in lines] == names, "one hash job per shard"
    assert duplicate["distance"] <= 4
    dataset = read_output(workdir, "dataset.jsonl")
    assert len(dataset) == len(names) - 1 and duplicate["id"] not in {r["id"] for r in dataset}
    assert read_output(workdir, "stats.json")["quality"]["duplicates_skipped"] == 1


def test_rule_flags_are_counted_in_stats_and_report(workdir):
    answers = {"rec-0": "Q: What is shown?\nA: a red and white lighthouse standing on a rocky shore at dusk\n"
                        "Q: Name the colour\nA: red"}
    with ChatServer(script=answers) as server:
        write_records(workdir, tagged_records(workdir, 2))
        write_config(workdir, server.base_url, pipeline="image_vqa", export={"drop_flags": ["long_answer"]})
        snakemake(workdir)
    record = read_output(workdir, "dataset.jsonl")[0]
    flags = [qa["flags"] for qa in record["qas"]]
    assert "long_answer" in flags[0] and "and_or" in flags[0]
    quality = read_output(workdir, "stats.json")["quality"]
    assert quality["flags"]["long_answer"] == 1 and quality["flags"]["and_or"] == 1
    exported = json.loads((workdir / "results/test/export/conversations.json").read_text())
    assert "lighthouse standing" not in json.dumps(exported)
    summary = (workdir / "results/test/report/quality.html").read_text()
    assert "long_answer" in summary


def test_a_killed_verify_job_resumes_from_the_journal(workdir, server):
    write_records(workdir, tagged_records(workdir, 6))
    write_config(workdir, server.base_url, shard_size=6, verify={"enabled": True})
    snakemake(workdir)
    run = workdir / "results/test"
    journal = run / "journal/shard-00000.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    judged = [n for n, line in enumerate(lines) if '"verdicts' in json.loads(line).get("answer", "")]
    assert len(judged) == 6
    # as if the verify job had been killed after its fourth answer
    journal.write_text("".join(line for n, line in enumerate(lines) if n not in judged[4:]))
    for name in ("verified/shard-00000.jsonl", "verified/shard-00000.failed.jsonl", "dataset.jsonl"):
        (run / name).unlink()
    before = sum(server.stats["judged"].values())
    snakemake(workdir)
    assert sum(server.stats["judged"].values()) == before + 2, "only the two unjournaled records asked again"
    assert all(r["verify"]["status"] == "ok" for r in read_output(workdir, "dataset.jsonl"))
