"""Issue 7: training exports (with filters) and the Snakemake report, rendered in Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml
from PIL import Image

import vqaflow
from chat_server import ChatServer
from vqaflow.digests import value_digest
from vqaflow.plan import public_config
from workflow_helpers import (
    REPO,
    read_output,
    schema_defaults,
    snakemake,
    tagged_records,
    write_config,
    write_records,
)

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
    for plot in ("funnel", "qa_pairs", "lengths", "latency"):
        assert (report_dir / f"{plot}.png").read_bytes().startswith(b"\x89PNG")
    samples = (report_dir / "samples.html").read_text()
    assert samples.count("<section>") == 4 and samples.count("data:image/jpeg;base64,") == 4
    assert '<div class="gallery">' in samples


def test_report_funnel_is_stats_json_and_the_export(finished_run):
    report_dir = finished_run / "results/test/report"
    stats = read_output(finished_run, "stats.json")
    with Image.open(report_dir / "funnel.png") as picture:
        drawn = {stage["stage"]: stage["count"] for stage in json.loads(picture.text["Description"])}
    exported = pl.read_parquet(finished_run / "results/test/export/dataset.parquet")["questions"].list.len().sum()
    assert drawn == {
        "records": stats["records_in"], "answered": stats["records_ok"],
        "parsed (ok or partial)": stats["parse_status"]["ok"] + stats["parse_status"]["partial"],
        "QA pairs": stats["qa_pairs"],
        "passing the rule filters": stats["qa_pairs"] - stats["quality"]["flagged_pairs"],
        "exported": exported,
    }, "no judge stage without verify"
    assert list(drawn.values()) == [4, 4, 3, 7, 6, 5]  # r001 unparsed; drop_ungrounded and the repeat go
    summary = (report_dir / "summary.html").read_text()
    assert "<th>parsed (ok or partial) (records)</th><td>3</td>" in summary
    assert "<th>model</th><td>test-vlm</td>" in summary


def test_no_failures_says_so(finished_run):
    failures = (finished_run / "results/test/report/failures.html").read_text()
    assert read_output(finished_run, "stats.json")["records_failed"] == 0
    assert "No failures: all 4 records were answered." in failures
    assert "<img" not in failures, "no empty chart"


def report_page(report: Path) -> tuple[str, dict]:
    """The first page (workflow description) and the results of a Snakemake report.html."""
    text = report.read_text()
    first = json.loads(re.search(r"var workflow_desc = (.*?);\n", text, re.S).group(1))
    results = json.loads(re.search(r"var results = (\{.*?\});\n", text, re.S).group(1))
    return first, results


def test_report_first_page_names_the_run_and_opens_the_gallery_in_one_click(finished_run):
    report = finished_run / "report.html"
    snakemake(finished_run, "--report", str(report))
    first, results = report_page(report)
    given = yaml.safe_load((finished_run / "config.yaml").read_text())
    defaults = schema_defaults()
    config = {**defaults, **given, **{key: {**defaults[key], **value} for key, value in given.items()
                                      if isinstance(value, dict)}}  # as the run validated it
    for name, value in (("model", "test-vlm"), ("pipeline", "context_vqa"), ("backend", "api"),
                        ("input", "records.jsonl"), ("vqaflow version", vqaflow.__version__)):
        assert f"<th>{name}</th><td>{value}</td>" in first, name
    digest = re.search(r"<th>config digest</th><td>([0-9a-f]{16})</td>", first).group(1)
    assert digest == value_digest(public_config(config), 16), "sha256 of the config the run used"
    assert re.search(r"<th>finished</th><td>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td>", first)
    link = re.search(r'<a href="javascript:([^"]*)">Sample gallery</a>', first)
    assert link, "the gallery is linked from the first page"
    if shutil.which("node") is None:
        pytest.skip("no node to run the link's script")
    script = (f"const results = {json.dumps(results)}; let shown;"
              "const app = {setView: (view) => { shown = view; }};"
              f"{html.unescape(link.group(1))}; console.log(JSON.stringify(shown));")
    shown = json.loads(subprocess.run(["node", "-"], input=script, capture_output=True, text=True, check=True).stdout)
    samples = "results/test/report/samples.html"
    assert shown == {"content": "html", "contentPath": results[samples]["data_uri"], "resultPath": samples}


@pytest.mark.report
@pytest.mark.skipif(shutil.which("chromium") is None, reason="no Chromium (CI installs it)")
def test_report_renders_in_chromium(finished_run):
    report = finished_run / "report.html"
    snakemake(finished_run, "--report", str(report))
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run([*browser, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    for section in ("1. Summary", "2. Plots", "3. Samples"):
        assert section in dom.stdout, section
    for shown in ("test-vlm", "context_vqa", "config digest", "Sample gallery"):  # the first page
        assert shown in dom.stdout, shown
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    subprocess.run([*browser, "--window-size=1280,900", f"--screenshot={artifacts / 'report.png'}",
                    report.as_uri()], capture_output=True, timeout=120, check=True)
    assert (artifacts / "report.png").stat().st_size > 10_000
