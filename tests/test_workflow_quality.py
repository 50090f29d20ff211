"""The quality layer end to end: a judge model checks every pair, identical requests are asked
once (across shards too), near-duplicate images are skipped (distinct flat ones never),
questions repeated on an image are flagged across shards, and rule flags are counted."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from PIL import Image

from chat_server import OVERFLOW, ChatServer
from test_dedup import low_texture_images
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


def test_identical_requests_in_different_shards_are_asked_and_judged_once(workdir, server):
    records = tagged_records(workdir, 5)
    records[4]["conversation"][0]["value"] += f" {OVERFLOW}"  # rejected for good: its copy fails with it
    copies = [{**records[0], "id": "copy-a"}, {**records[1], "id": "copy-b"}, {**records[0], "id": "copy-c"},
              {**records[4], "id": "copy-d"}]
    write_records(workdir, records + copies)  # shards of 2: [r000 r001] [r002 r003] [r004 copy-a] [copy-b copy-c] [copy-d]
    write_config(workdir, server.base_url, shard_size=2, max_failed_fraction=0.5, verify={"enabled": True})
    snakemake(workdir)
    assert server.stats["answered"] == {f"rec-{n}": 1 for n in range(4)}, "each request asked once"
    assert server.stats["judged"] == {f"rec-{n}": 1 for n in range(4)}, "and judged once"
    assert read_output(workdir, "request_duplicates.jsonl") == [
        {"id": "copy-a", "index": 5, "shard": "shard-00002", "duplicate_of": "r000"},
        {"id": "copy-b", "index": 6, "shard": "shard-00003", "duplicate_of": "r001"},
        {"id": "copy-c", "index": 7, "shard": "shard-00003", "duplicate_of": "r000"},
        {"id": "copy-d", "index": 8, "shard": "shard-00004", "duplicate_of": "r004"},
    ]
    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == ["r000", "r001", "r002", "r003", "copy-a", "copy-b", "copy-c"]
    by_id = {r["id"]: r for r in dataset}
    for copy, original in (("copy-a", "r000"), ("copy-b", "r001"), ("copy-c", "r000")):
        assert by_id[copy]["generation"]["duplicate_of"] == original
        assert by_id[copy]["context_vqa"]["context"] == by_id[original]["context_vqa"]["context"]
        assert by_id[copy]["verify"] == by_id[original]["verify"]
        qas = by_id[copy]["context_vqa"]["qas"]
        assert [qa["question"] for qa in qas] == [qa["question"] for qa in by_id[original]["context_vqa"]["qas"]]
        assert all("duplicate_question" in qa["flags"] for qa in qas), "the same image, the same questions"
    assert not any("duplicate_question" in qa["flags"] for qa in by_id["r000"]["context_vqa"]["qas"])
    failed = {f["id"]: f for f in read_output(workdir, "failed.jsonl")}
    assert set(failed) == {"r004", "copy-d"} and failed["copy-d"]["duplicate_of"] == "r004"
    assert failed["copy-d"]["kind"] == failed["r004"]["kind"] == "rejected" and failed["copy-d"]["index"] == 8
    stats = read_output(workdir, "stats.json")
    originals = [r for r in dataset if "duplicate_of" not in r["generation"]]
    assert stats["tokens"]["prompt"] == sum(r["generation"]["prompt_tokens"] for r in originals)
    assert stats["quality"]["judge_tokens"]["prompt"] == sum(r["verify"]["tokens"]["prompt"] for r in originals)
    assert stats["quality"]["identical_requests"] == 3 and stats["records_failed"] == 2
    assert stats["diversity"]["questions"] == 14 and stats["diversity"]["unique_questions"] == 8

    requests = server.stats["requests"]
    snakemake(workdir)
    assert server.stats["requests"] == requests, "a rerun asks nothing"


def test_questions_repeated_on_one_image_across_shards_are_flagged(workdir):
    answers = {"rec-0": "Q: What color is the lighthouse?\nA: red\nQ: How tall is it?\nA: 30 m",
               "rec-5": "Q: What is the color of the lighthouse?\nA: red\nQ: how tall is it\nA: 30 m\n"
                        "Q: What color is the sky?\nA: blue"}
    with ChatServer(script=answers) as server:
        write_records(workdir, tagged_records(workdir, 6))  # r000 and r005 show the same image
        write_config(workdir, server.base_url, pipeline="image_vqa", shard_size=2,
                     export={"drop_flags": ["duplicate_question", "near_duplicate_question"]})
        snakemake(workdir)
    dataset = {r["id"]: r for r in read_output(workdir, "dataset.jsonl")}
    assert [qa["flags"] for qa in dataset["r000"]["qas"]] == [[], []]
    assert [qa["flags"] for qa in dataset["r005"]["qas"]] == [["near_duplicate_question"], ["duplicate_question"], []]
    stats = read_output(workdir, "stats.json")
    assert stats["quality"]["flags"]["duplicate_question"] == 1
    assert stats["quality"]["flags"]["near_duplicate_question"] == 1
    diversity = stats["diversity"]
    assert diversity["questions"] == 13 and diversity["unique_questions"] == 12
    assert diversity["top_templates"][:2] == [  # the 4 default answers' questions; ties by name
        {"template": "how many _ does rec # have", "count": 4, "share": round(4 / 13, 6)},
        {"template": "which seed produced rec #", "count": 4, "share": round(4 / 13, 6)}]
    exported = (workdir / "results/test/export/conversations.json").read_text()
    assert "What color is the sky?" in exported and "What is the color of the lighthouse?" not in exported
    page = (workdir / "results/test/report/quality.html").read_text()
    assert "Question diversity" in page and "which seed produced rec #" in page


def test_perceptual_dedup_skips_copies_and_never_distinct_flat_images(workdir, server):
    with Image.open(DEMO_IMAGES / "lighthouse.png") as source:
        small = source.convert("RGB").resize((source.width // 2, source.height // 2))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=60)
    (workdir / "images" / "lighthouse-copy.jpg").write_bytes(buffer.getvalue())
    low_texture_images(workdir / "images")  # flat colours, gradients, colour variants
    shutil.copy(workdir / "images" / "grey.png", workdir / "images" / "zz-grey-copy.png")
    names = image_names(workdir)
    records = [{"id": name, "image": f"images/{name}"} for name in names]
    write_records(workdir, records)
    write_config(workdir, server.base_url, pipeline="image_vqa", dedup={"images": "perceptual"})
    snakemake(workdir)
    found = {d["id"]: d for d in read_output(workdir, "duplicates.jsonl")}
    assert set(found) == {"lighthouse.png", "zz-grey-copy.png"}  # lighthouse-copy.jpg sorts first
    assert found["lighthouse.png"]["duplicate_of"] == "lighthouse-copy.jpg" and found["lighthouse.png"]["distance"] <= 4
    assert found["zz-grey-copy.png"] == {"id": "zz-grey-copy.png", "duplicate_of": "grey.png", "distance": 0}
    shards = sorted(path.stem for path in (workdir / "results/test/dedup/hashes").glob("*.jsonl"))
    assert shards == sorted(path.stem for path in (workdir / "results/test/shards").glob("*.jsonl")) and len(shards) > 1
    hashed = [read_output(workdir, f"dedup/hashes/{shard}.jsonl") for shard in shards]
    assert [line["id"] for lines in hashed for line in lines] == names, "one hash job per shard"
    dataset = read_output(workdir, "dataset.jsonl")
    assert len(dataset) == len(names) - 2 and not set(found) & {r["id"] for r in dataset}
    assert read_output(workdir, "stats.json")["quality"]["duplicates_skipped"] == 2


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
    # as if the verify job had been killed after its fourth answer (so nothing after it ran)
    journal.write_text("".join(line for n, line in enumerate(lines) if n not in judged[4:]))
    for name in ("verified/shard-00000.jsonl", "verified/shard-00000.failed.jsonl", "final/shard-00000.jsonl",
                 "dataset.jsonl"):
        (run / name).unlink()
    before = sum(server.stats["judged"].values())
    snakemake(workdir)
    assert sum(server.stats["judged"].values()) == before + 2, "only the two unjournaled records asked again"
    assert all(r["verify"]["status"] == "ok" for r in read_output(workdir, "dataset.jsonl"))
