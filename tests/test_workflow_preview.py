"""`snakemake preview`: a priced estimate from a sample, whose answers the full run reuses."""

from __future__ import annotations

import json
import shutil

import pytest

from chat_server import TRUNCATE, ChatServer
from workflow_helpers import read_output, snakemake, tagged_records, write_config, write_records

pytestmark = pytest.mark.workflow

PRICES = {"price_input_per_mtok": 0.15, "price_output_per_mtok": 0.6}


def tag(record_id: str) -> str:
    return f"rec-{int(record_id[1:])}"


def test_preview_projects_the_full_run_and_the_full_run_does_not_ask_it_again(workdir):
    write_records(workdir, tagged_records(workdir, 200))
    with ChatServer() as server:
        write_config(workdir, server.base_url, shard_size=50, api=PRICES)
        result = snakemake(workdir, "preview")
        assert not (workdir / "results/test/dataset.jsonl").exists(), "the preview is not the run"

        found = read_output(workdir, "preview/estimate.json")
        sample = read_output(workdir, "preview/sample.jsonl")
        assert len(sample) == found["measured"]["records"] == 20
        assert [line["index"] // 10 for line in sample] == list(range(20)), "one record per tenth"
        assert {line["shard"] for line in sample} == {f"shard-{k:05d}" for k in range(4)}
        assert sum(server.stats["answered"].values()) == 20
        assert found["measured"]["answered"] == 20 and found["measured"]["asked"] == 20
        assert found["measured"]["parse_status"]["ok"]["value"] == 1.0
        assert found["measured"]["image_tokens_per_image"]["mean"] == pytest.approx(85, abs=2)
        projected = found["projected"]
        assert projected["records"] == 200 and projected["requests"]["value"] == pytest.approx(200)
        assert projected["cost_batch"]["value"] == pytest.approx(projected["cost_online"]["value"] / 2)
        assert projected["wall_time_s"]["value"] > 0
        assert "vqaflow preview of run 'test': 20 of 200 records" in result.stderr
        samples = (workdir / "results/test/preview/samples.html").read_text()
        assert samples.count("<section>") == 20 and "data:image/jpeg;base64," in samples
        for line in sample:  # each answer sits in the journal of the shard that holds the record
            journal = (workdir / f"results/test/journal/{line['shard']}.jsonl").read_text()
            assert f'"id":"{line["id"]}"' in journal.replace(" ", "")

        snakemake(workdir)
        assert all(count == 1 for count in server.stats["answered"].values()), "a record was asked twice"
        assert len(server.stats["answered"]) == 200
        stats = read_output(workdir, "stats.json")
    log = (workdir / "results/test/logs/generate_api/shard-00000.log").read_text()
    assert "image tokens: 85 per image, measured by the preview on 20 images" in log
    assert stats["records_ok"] == 200
    tokens = stats["tokens"]["prompt"] + stats["tokens"]["completion"]
    guess = projected["prompt_tokens"]["value"] + projected["completion_tokens"]["value"]
    assert abs(guess - tokens) / tokens < 0.15, (guess, tokens)
    for kind in ("prompt", "completion"):
        interval = projected[f"{kind}_tokens"]
        assert interval["low"] <= stats["tokens"][kind] <= interval["high"], (kind, interval, stats["tokens"])


def test_preview_answers_follow_their_records_through_a_reshard(workdir):
    write_records(workdir, tagged_records(workdir, 30))
    with ChatServer() as server:
        write_config(workdir, server.base_url, shard_size=10, preview={"records": 6},
                     generation={"seed": 7})
        snakemake(workdir, "preview")
        sampled = {line["id"] for line in read_output(workdir, "preview/sample.jsonl")}
        assert len(sampled) == 6
        write_config(workdir, server.base_url, shard_size=4, preview={"records": 6},
                     generation={"seed": 7})
        snakemake(workdir)
        assert all(count == 1 for count in server.stats["answered"].values())
        assert len(server.stats["answered"]) == 30
        requests = server.stats["requests"]

        shutil.rmtree(workdir / "results/test/preview")
        snakemake(workdir, "preview")  # again, on the new shards: every answer is stored
        assert server.stats["requests"] == requests
        found = read_output(workdir, "preview/estimate.json")
        rerun = snakemake(workdir)
        assert "Nothing to be done" in rerun.stdout + rerun.stderr, "a new estimate reruns no generate job"
    assert found["measured"]["asked"] == 0 and found["measured"]["already_in_journal"] == 6
    assert found["projected"]["prompt_tokens"]["value"] > 0, "stored answers still measure"


def test_preview_plans_for_every_backend(workdir):
    write_records(workdir, tagged_records(workdir, 12))
    for backend in ("batch", "vllm"):
        write_config(workdir, "http://unused.invalid/v1", backend=backend, preview={"records": 3})
        plan = snakemake(workdir, "preview", "-n")
        assert "preview_generate" in plan.stdout and "generate_" not in plan.stdout.replace("preview_generate", "")


def test_estimate_json_is_valid_json_without_prices(workdir, server):
    write_records(workdir, tagged_records(workdir, 5))
    write_config(workdir, server.base_url, preview={"records": 50})
    snakemake(workdir, "preview")
    found = json.loads((workdir / "results/test/preview/estimate.json").read_text())
    assert found["measured"]["records"] == 5, "a sample larger than the input is the input"
    assert found["projected"]["cost_online"] is None
    interval = found["projected"]["prompt_tokens"]
    assert interval["low"] == interval["value"] == interval["high"], "every record measured: no doubt left"


def test_a_batch_run_after_the_preview_sends_only_the_records_not_previewed(workdir):
    write_records(workdir, tagged_records(workdir, 20))
    with ChatServer() as server:
        batch = {"poll_s": 0.05, "max_poll_s": 0.1}
        write_config(workdir, server.base_url, backend="batch", shard_size=10, preview={"records": 5},
                     batch=batch, api=PRICES)
        snakemake(workdir, "preview")  # online, though the run is batch
        assert server.batch_stats["batches_created"] == 0 and sum(server.stats["answered"].values()) == 5
        found = read_output(workdir, "preview/estimate.json")
        assert found["projected"]["cost_batch"]["value"] < found["projected"]["cost_online"]["value"]
        snakemake(workdir)
        assert sum(server.batch_stats["lines_per_batch"]) == 15, "previewed records went into a batch"
        assert all(count == 1 for count in server.stats["answered"].values())
        dataset = read_output(workdir, "dataset.jsonl")
    sampled = {line["id"] for line in read_output(workdir, "preview/sample.jsonl")}
    assert {r["id"] for r in dataset if r["generation"]["backend"] == "api"} == sampled


def test_repairs_are_previewed_counted_and_not_asked_again(workdir):
    records = tagged_records(workdir, 10)
    for record in records[:4]:
        record["conversation"][0]["value"] += f" {TRUNCATE}"  # cut off: asked once more, then reformatted
    write_records(workdir, records)
    with ChatServer() as server:
        write_config(workdir, server.base_url, shard_size=5, preview={"records": 10})
        snakemake(workdir, "preview")
        found = read_output(workdir, "preview/estimate.json")
        assert server.stats["requests"] == 10 + 4 + 4 and sum(server.stats["reformats"].values()) == 4
        assert found["measured"]["asked"] == 18
        assert found["projected"]["requests"]["value"] == pytest.approx(18)
        snakemake(workdir)
        assert server.stats["requests"] == 18, "the run asked a previewed request again"


def test_preview_judges_the_sample_and_the_run_does_not_judge_it_again(workdir, server):
    write_records(workdir, tagged_records(workdir, 12))
    write_config(workdir, server.base_url, shard_size=4, preview={"records": 4},
                 verify={"enabled": True, "blind": True}, api=PRICES)
    result = snakemake(workdir, "preview")
    assert sum(server.stats["judged"].values()) == 4 and sum(server.stats["blind"].values()) == 4
    found = read_output(workdir, "preview/estimate.json")
    judge = found["measured"]["judge"]
    assert judge["records"] == 4 and judge["prompt_tokens_per_record"]["mean"] > 0
    verified = read_output(workdir, "preview/verified.jsonl")
    assert judge["prompt_tokens_per_record"]["mean"] == pytest.approx(
        sum(r["verify"]["tokens"]["prompt"] + r["blind"]["tokens"]["prompt"] for r in verified) / 4), \
        "the blind check is priced with the judge"
    assert found["projected"]["judge_prompt_tokens"]["value"] > 0
    assert found["projected"]["judge_cost_online"]["value"] > 0
    assert "judge: 4 records judged" in result.stderr
    snakemake(workdir)
    assert all(count == 1 for count in server.stats["judged"].values()), "a record was judged twice"
    assert all(count == 1 for count in server.stats["blind"].values()) and len(server.stats["blind"]) == 12
    assert all(count == 1 for count in server.stats["answered"].values()), "a record was asked twice"
    assert len(server.stats["judged"]) == 12
