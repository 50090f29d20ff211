"""Issue 3 end to end: faults, kills, bad keys, bad input and bad images, through `snakemake`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PIL import Image

from chat_server import ChatServer
from workflow_helpers import (
    killed_when,
    read_output,
    snakemake,
    tagged_records,
    write_config,
    write_records,
)

pytestmark = pytest.mark.workflow


def test_flaky_server_every_record_exactly_once(workdir):
    faults = {"429": 0.10, "500": 0.05, "drop": 0.03, "empty": 0.02}
    with ChatServer(latency=0.01, faults=faults, seed=3) as server:
        write_records(workdir, tagged_records(workdir, 300))
        write_config(workdir, server.base_url, shard_size=100, api={"max_concurrency": 16})
        snakemake(workdir, timeout=600)
        statuses = server.stats["statuses"]
        answered = server.stats["answered"]
    assert all(statuses[kind] > 0 for kind in ("429", "500", "drop", "empty")), statuses
    assert read_output(workdir, "failed.jsonl") == []
    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(300)]
    assert all(r["vqa"] and r["context_vqa"]["qas"] for r in dataset)
    assert set(answered) == {f"rec-{n}" for n in range(300)}
    assert set(answered.values()) == {1}, "a record that got an answer was asked again"
    assert max(r["generation"]["attempts"] for r in dataset) > 1


def _journal_lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_killed_shard_resumes_asking_only_in_flight_requests(workdir):
    concurrency = 4
    with ChatServer(latency=0.2) as server:
        write_records(workdir, tagged_records(workdir, 60))
        write_config(workdir, server.base_url, shard_size=60, api={"max_concurrency": concurrency})
        journal = workdir / "results/test/journal/shard-00000.jsonl"
        killed_when(workdir, lambda: _journal_lines(journal) >= 20, cores=2)
        time.sleep(0.5)  # let the server finish answering what was in flight
        journaled = _journal_lines(journal)
        assert 20 <= journaled < 60
        assert not (workdir / "results/test/dataset.jsonl").exists()

        snakemake(workdir, "--unlock")
        snakemake(workdir, "--rerun-incomplete")
        answered = server.stats["answered"]

    dataset = read_output(workdir, "dataset.jsonl")
    assert [r["id"] for r in dataset] == [f"r{n:03d}" for n in range(60)]
    asked_twice = [tag for tag, count in answered.items() if count > 1]
    assert len(asked_twice) <= concurrency, asked_twice
    assert sum(answered.values()) <= 60 + concurrency


def test_wrong_key_fails_fast_without_hammering(workdir):
    with ChatServer(key="the-right-key") as server:
        write_records(workdir, tagged_records(workdir, 40))
        write_config(workdir, server.base_url, shard_size=10)
        started = time.monotonic()
        result = snakemake(workdir, key="a-wrong-key", check=False)
        elapsed = time.monotonic() - started
        requests = server.stats["requests"]
    assert result.returncode != 0
    assert "401" in result.stderr and "OPENAI_API_KEY" in result.stderr
    assert elapsed < 30 and requests == 0, (elapsed, requests)
    assert not (workdir / "results/test/dataset.jsonl").exists()


def test_unknown_model_is_fatal(workdir, server):
    write_records(workdir, tagged_records(workdir, 8))
    write_config(workdir, server.base_url, api={"model": "no-such-model"})
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert "no-such-model" in result.stderr
    assert server.stats["requests"] <= 8
    assert not (workdir / "results/test/dataset.jsonl").exists()


def test_key_appears_in_no_file(workdir):
    secret = "sk-vqaflow-test-5ecret-value-0123456789"
    with ChatServer(key=secret) as server:
        write_records(workdir, tagged_records(workdir, 6))
        write_config(workdir, server.base_url)
        snakemake(workdir, key=secret)
        rerun = snakemake(workdir, "--forceall", "--verbose", key=secret)
    assert secret not in rerun.stdout + rerun.stderr
    leaks = [p for p in workdir.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a"}\n{"id": "b"\n', "records.jsonl:2"),
        ('{"id": "a"}\n[1, 2]\n', "records.jsonl:2"),
        ('{"id": "a"}\n{"id": "a"}\n', "'a'"),
        ("", "records.jsonl"),
    ],
)
def test_bad_input_stops_before_any_request(workdir, server, content, message):
    (workdir / "records.jsonl").write_text(content)
    write_config(workdir, server.base_url)
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert server.stats["requests"] == 0


def test_bad_images_fail_only_their_records(workdir, server):
    records = tagged_records(workdir, 4)
    (workdir / "images/corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (workdir / "images/notes.txt").write_text("not an image")
    records[1]["image"] = ["images/missing.png"]
    records[2]["image"] = ["images/corrupt.jpg"]
    records[3]["image"] = ["images/notes.txt"]
    write_records(workdir, records)
    write_config(workdir, server.base_url, max_failed_fraction=1.0)
    snakemake(workdir)
    assert [r["id"] for r in read_output(workdir, "dataset.jsonl")] == ["r000"]
    failed = {f["id"]: f for f in read_output(workdir, "failed.jsonl")}
    assert set(failed) == {"r001", "r002", "r003"}
    assert "missing.png" in failed["r001"]["error"] and "not found" in failed["r001"]["error"].lower()
    assert "corrupt.jpg" in failed["r002"]["error"]
    assert "notes.txt" in failed["r003"]["error"]
    assert server.stats["requests"] == 1


def test_rejected_requests_fail_records_and_the_share_decides_the_exit(workdir, server):
    records = tagged_records(workdir, 8)
    for record in records[:2]:
        record["conversation"][0]["value"] += " [[context-overflow]]"
    write_records(workdir, records)
    write_config(workdir, server.base_url, max_failed_fraction=0.1)
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert "2 of 8 records failed" in result.stderr
    assert len(read_output(workdir, "dataset.jsonl")) == 6
    failed = read_output(workdir, "failed.jsonl")
    assert [f["id"] for f in failed] == ["r000", "r001"]
    assert all("context length" in f["error"] and f["attempts"] == 1 for f in failed)
    assert read_output(workdir, "stats.json")["records_failed"] == 2

    write_config(workdir, server.base_url, max_failed_fraction=0.3)
    requests = server.stats["requests"]
    snakemake(workdir)
    assert server.stats["requests"] == requests  # only the check ran again


def test_journal_fingerprint_follows_what_shapes_answers(workdir, server):
    write_records(workdir, tagged_records(workdir, 4))
    write_config(workdir, server.base_url, api={"max_concurrency": 8, "timeout_s": 10})
    snakemake(workdir)
    asked = server.stats["requests"]

    write_config(workdir, server.base_url, api={"max_concurrency": 2, "timeout_s": 30})
    snakemake(workdir)
    assert server.stats["requests"] == asked

    write_config(workdir, server.base_url, generation={"temperature": 0.2})
    snakemake(workdir)
    assert server.stats["requests"] == asked + 4


def test_large_photos_are_downscaled_before_sending(workdir, server):
    Image.effect_noise((4000, 3000), 40).convert("RGB").save(workdir / "images/camera.jpg", quality=95)
    records = [{"id": "big", "image": "images/camera.jpg", "conversation": [
        {"from": "human", "value": "Write a Wikipedia article rec-1."}]}]
    write_records(workdir, records)
    write_config(workdir, server.base_url)
    snakemake(workdir)
    (size,) = server.stats["image_sizes"]
    width, height = map(int, size.split()[0].split("x"))
    assert width * height <= 1024 * 1024 and abs(width / height - 4 / 3) < 0.01
    assert json.loads((workdir / "results/test/stats.json").read_text())["records_ok"] == 1
