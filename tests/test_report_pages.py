"""The report's pieces without a run: integer count axes, a sentence instead of an empty plot, a
length plot that shows equal lengths, the failures page, and the config without secrets."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from vqaflow.config_check import public_config
from vqaflow.stages import report, report_plots
from vqaflow.stages.report_plots import COLOURS, Plots


class Kept(Plots):
    """Plots that keep each figure's axes' ticks and limits before closing it."""

    def __init__(self, out_dir):
        super().__init__(out_dir)
        self.axes = {}

    def save(self, fig, name, about):
        fig.canvas.draw()
        self.axes[name] = [{"x": list(ax.get_xticks()), "y": list(ax.get_yticks()), "xlim": ax.get_xlim()}
                           for ax in fig.axes]
        return super().save(fig, name, about)


def integral(ticks):
    return all(float(tick).is_integer() for tick in ticks)


def test_count_axes_have_integer_ticks(tmp_path):
    plots = Kept(tmp_path)
    report_plots.qa_pairs_plot(plots, [1, 1, 2])
    report_plots.lengths_plot(plots, [40, 41, 43], [])
    report_plots.funnel_plot(plots, [("records", 3, "records"), ("answered", 2, "records"), ("QA pairs", 4, "pairs")])
    [pairs], [lengths], [funnel] = plots.axes["qa_pairs.png"], plots.axes["lengths.png"], plots.axes["funnel.png"]
    assert integral(pairs["x"]) and integral(pairs["y"])
    assert integral(lengths["x"]) and integral(lengths["y"])
    assert integral(funnel["x"])


def bar_width(path, colour) -> int:
    """How many pixel columns of the PNG hold the bar colour."""
    target = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    with Image.open(path) as picture:
        rgb = picture.convert("RGB")
        width, height = rgb.size
        pixels = rgb.load()
        return sum(any(pixels[x, y] == target for y in range(height)) for x in range(width))


def test_equal_lengths_make_a_readable_bar(tmp_path):
    plots = Kept(tmp_path)
    path = report_plots.lengths_plot(plots, [120] * 5, [])
    assert bar_width(path, COLOURS["records"]) >= 60, "one wide bar, not a sliver"
    [panel] = plots.axes["lengths.png"]
    assert panel["xlim"][0] < 120 < 121 < panel["xlim"][1]
    assert report_plots.length_bins([120] * 5) == [120, 121]


def test_no_data_is_a_sentence_not_an_empty_plot(tmp_path):
    plots = Plots(tmp_path)
    made = {
        "qa_pairs": report_plots.qa_pairs_plot(plots, []),
        "lengths": report_plots.lengths_plot(plots, [], []),
        "latency": report_plots.latency_plot(plots, report.latency_percentiles([])),
        "funnel": report_plots.funnel_plot(plots, report.funnel(EMPTY_STATS, 0, False)),
    }
    for name, path in made.items():
        with Image.open(path) as picture:
            assert picture.text["Description"].startswith("No "), name


EMPTY_STATS = {"records_in": 0, "records_ok": 0, "records_failed": 0, "failed_fraction": 0.0, "qa_pairs": 0,
               "parse_status": {"ok": 0, "partial": 0, "none": 0}, "quality": {"flagged_pairs": 0, "accepted": 0}}


def test_the_funnel_has_the_judge_stage_only_when_the_judge_ran():
    stats = {**EMPTY_STATS, "records_in": 5, "records_ok": 4, "qa_pairs": 9,
             "parse_status": {"ok": 2, "partial": 1, "none": 1}, "quality": {"flagged_pairs": 2, "accepted": 6}}
    judged = report.funnel(stats, 5, True)
    assert [(stage, count) for stage, count, _ in judged] == [
        ("records", 5), ("answered", 4), ("parsed (ok or partial)", 3), ("QA pairs", 9),
        ("passing the rule filters", 7), ("accepted by the judge", 6), ("exported", 5)]
    assert [unit for _, _, unit in judged] == ["records"] * 3 + ["pairs"] * 4
    assert "accepted by the judge" not in [stage for stage, _, _ in report.funnel(stats, 5, False)]


def test_failures_page_charts_the_kinds_with_their_first_errors(tmp_path):
    failed = tmp_path / "failed.jsonl"
    rows = [{"id": f"r{n}", "kind": kind, "error": f"error {n}", "transient": kind == "retries_exhausted"}
            for n, kind in enumerate(["image", "image", "retries_exhausted", "image", "image"])]
    failed.write_text("".join(json.dumps(row) + "\n" for row in rows))
    kinds = report.failure_kinds(failed, examples=2)
    assert kinds == {"image": {"records": 4, "transient": 0, "examples": ["r0: error 0", "r1: error 1"]},
                     "retries_exhausted": {"records": 1, "transient": 1, "examples": ["r2: error 2"]}}
    stats = {"records_in": 10, "records_failed": 5, "failed_fraction": 0.5}
    page = report.failures_html(stats, kinds, tmp_path)
    assert "5 of 10 records failed (50.0%)" in page
    assert "<tr><th>image</th><td>4</td><td>0</td><td>r0: error 0<br>r1: error 1</td></tr>" in page
    assert page.count("data:image/png;base64,") == 1
    assert "No failures" not in page
    assert "No failures: the input had no records." in report.failures_html(EMPTY_STATS, {}, tmp_path)


def test_the_config_shown_and_digested_holds_no_secret():
    config = {"api": {"base_url": "https://user:pw@example.com/v1", "key_env": "MY_KEY", "api_key": "sk-1",
                      "max_tokens": 5, "tokens_per_minute": 9},
              "vllm": {"engine_args": {"hf_token": "hf_x", "Password": "p"}}, "keys": {"id": "id"}}
    public = public_config(config)
    assert public == {"api": {"base_url": "https://example.com/v1", "key_env": "MY_KEY", "max_tokens": 5,
                              "tokens_per_minute": 9},
                      "vllm": {"engine_args": {}}, "keys": {"id": "id"}}
    assert "sk-1" not in json.dumps(public) and "pw" not in json.dumps(public)


@pytest.mark.parametrize("backend,model", [("api", "test-vlm"), ("vllm", "tiny")])
def test_run_info_names_the_model_of_the_backend(backend, model):
    config = {"run": "r", "backend": backend, "pipeline": "image_vqa", "input": "photos",
              "api": {"model": "test-vlm"}, "vllm": {"model": "tiny"}, "verify": {"enabled": True, "model": None}}
    info = dict(report.run_info(config, 0.0))
    assert info["model"] == model and info["judge"] == model
    assert info["finished"] == "1970-01-01 00:00 UTC"
    assert len(info["config digest"]) == 16
