"""Issue 7: training exports (with filters) and the Snakemake report, rendered in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import polars as pl
import pytest

from chat_server import ChatServer
from workflow_helpers import REPO, read_output, snakemake, tagged_records, write_config, write_records

pytestmark = pytest.mark.workflow

ANSWERS = {  # scripted answers by record tag
    "rec-1": "I'm sorry, but I can't help with that.",
    "rec-2": (
        "**Wikipedia Article:** The harbour light was lit in 1921.\n\n"
        "Q1: When was the light lit?\nA1: 1921\n"
        "Q2: When was the light lit?\nA2: In 1921\n"
        "Q3: Who painted it?\nA3: A local artist\n"
    ),
}


@pytest.fixture
def finished_run(workdir):
    with ChatServer(script=ANSWERS) as server:
        write_records(workdir, tagged_records(workdir, 4))
        write_config(workdir, server.base_url, export={"drop_ungrounded": True},
                     api={"price_input_per_mtok": 2.5, "price_output_per_mtok": 10.0})
        snakemake(workdir)
    return workdir


def test_exports_apply_filters_and_load_with_polars_and_datasets(finished_run):
    export_dir = finished_run / "results/test/export"
    conversations = json.loads((export_dir / "conversations.json").read_text())
    assert [c["id"] for c in conversations] == ["r000", "r002", "r003"]  # r001: nothing parsed
    first = conversations[0]
    assert first["image"] == ["images/bar_chart.png"]  # as the input gave it
    opening = first["conversations"][0]["value"]
    assert opening.startswith("<image>\nThe subject of rec-0") and opening.endswith("How many images does rec-0 have?")
    assert [turn["from"] for turn in first["conversations"]] == ["human", "gpt", "human", "gpt"]
    harbour = conversations[1]["conversations"]
    assert [turn["value"] for turn in harbour[1::2]] == ["1921"], "the repeat and the ungrounded answer go"

    table = pl.read_parquet(export_dir / "dataset.parquet")
    assert table["id"].to_list() == ["r000", "r002", "r003"]
    assert table.columns == ["id", "images", "context", "questions", "answers"]

    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_files=str(export_dir / "dataset.parquet"), split="train")
    assert loaded[1]["questions"] == ["When was the light lit?"]
    chats = datasets.load_dataset("json", data_files=str(export_dir / "conversations.json"), split="train")
    assert chats.num_rows == 3


def test_report_summary_plots_and_samples(finished_run):
    report_dir = finished_run / "results/test/report"
    summary = (report_dir / "summary.html").read_text()
    assert "<th>records in</th><td>4</td>" in summary
    assert "<th>parse status none</th><td>1</td>" in summary
    stats = read_output(finished_run, "stats.json")
    cost = stats["tokens"]["prompt"] / 1e6 * 2.5 + stats["tokens"]["completion"] / 1e6 * 10
    assert f"${cost:,.4f}" in summary
    for plot in ("qa_pairs", "lengths", "latency", "failures"):
        assert (report_dir / f"{plot}.png").read_bytes().startswith(b"\x89PNG")
    samples = (report_dir / "samples.html").read_text()
    assert samples.count("<section>") == 4 and samples.count("data:image/jpeg;base64,") == 4


@pytest.mark.report
@pytest.mark.skipif(shutil.which("chromium") is None, reason="no Chromium (CI installs it)")
def test_report_renders_in_chromium(finished_run):
    report = finished_run / "report.html"
    snakemake(finished_run, "--report", str(report))
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run([*browser, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    for section in ("1. Summary", "2. Plots", "3. Samples"):
        assert section in dom.stdout, section
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    subprocess.run([*browser, "--window-size=1280,900", f"--screenshot={artifacts / 'report.png'}",
                    report.as_uri()], capture_output=True, timeout=120, check=True)
    assert (artifacts / "report.png").stat().st_size > 10_000
