"""The report's plots: the quality funnel, QA pairs per record, answer and article lengths,
request latency, and the failures chart.

Every count axis has integer ticks; a plot with nothing to show is a sentence saying so
("No failures", "No request latencies were recorded") instead of an empty axis. Each PNG
carries what it shows as text (its ``Description``: the funnel's stages and counts as JSON, or
the sentence), so a test reads the figures the image was drawn from.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

SIZE = (6.4, 3.6)
COLOURS = {"records": "#4c72b0", "pairs": "#55a868"}
NARROW_SPAN = 10  # characters: a length histogram narrower than this gets room around its bars


class Plots:
    """Matplotlib (Agg) figures saved as PNGs under ``out_dir``."""

    def __init__(self, out_dir: str | Path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        self.plt, self.locator = plt, MaxNLocator
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.made: list[Path] = []

    def figure(self, columns: int = 1):
        width = SIZE[0] if columns == 1 else SIZE[0] * 0.75 * columns
        return self.plt.subplots(1, columns, figsize=(width, SIZE[1]), squeeze=False)

    def integer(self, axis) -> None:
        """Whole-number ticks on an axis of counts."""
        axis.set_major_locator(self.locator(integer=True))

    def save(self, fig, name: str, about: str) -> Path:
        path = self.out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=100, metadata={"Description": about})
        self.plt.close(fig)
        self.made.append(path)
        return path

    def png(self, fig) -> bytes:
        """The figure as PNG bytes (for a page that embeds it)."""
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=100)
        self.plt.close(fig)
        return buffer.getvalue()

    def sentence(self, name: str, title: str, text: str) -> Path:
        """A plot with nothing to show: its title and a sentence saying why."""
        fig, axes = self.figure()
        ax = axes[0][0]
        ax.set_title(title)
        ax.axis("off")
        ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=12)
        return self.save(fig, name, text)


def funnel_plot(plots: Plots, stages: list[tuple[str, int, str]]) -> Path:
    """Horizontal bars from every record down to the pairs exported, records and pairs in two
    colours, each bar labelled with its count."""
    if not stages or not stages[0][1]:
        return plots.sentence("funnel.png", "Quality funnel", "No records: the input was empty.")
    fig, axes = plots.figure()
    ax = axes[0][0]
    counts = [count for _, count, _ in stages]
    bars = ax.barh([stage for stage, _, _ in stages], counts, color=[COLOURS[unit] for _, _, unit in stages])
    ax.bar_label(bars, labels=[f"{count:,}" for count in counts], padding=3)
    ax.invert_yaxis()  # the first stage on top
    ax.set_xlim(0, max(counts) * 1.15 or 1)
    plots.integer(ax.xaxis)
    ax.set(title="Quality funnel", xlabel="count")
    handles = [plots.plt.Rectangle((0, 0), 1, 1, color=colour) for colour in COLOURS.values()]
    ax.legend(handles, ["records", "QA pairs"], loc="best")
    about = json.dumps([{"stage": stage, "count": count, "unit": unit} for stage, count, unit in stages])
    return plots.save(fig, "funnel.png", about)


def qa_pairs_plot(plots: Plots, counts: list[int], without_pairs: str | None = None) -> Path:
    """QA pairs per record (``without_pairs``: the name of a pipeline that makes none)."""
    if without_pairs:
        return plots.sentence("qa_pairs.png", "QA pairs per record",
                              f"The pipeline {without_pairs} makes no QA pairs: see its output fields in the gallery.")
    if not counts:
        return plots.sentence("qa_pairs.png", "QA pairs per record", "No record was answered: no QA pairs to count.")
    fig, axes = plots.figure()
    ax = axes[0][0]
    ax.hist(counts, bins=range(0, max(counts) + 2), align="left", rwidth=0.8, color=COLOURS["pairs"])
    plots.integer(ax.xaxis)
    plots.integer(ax.yaxis)
    ax.set(title="QA pairs per record", xlabel="QA pairs", ylabel="records")
    return plots.save(fig, "qa_pairs.png", f"QA pairs of {len(counts)} records")


def length_bins(values: list[int]) -> list[int]:
    """Histogram edges on whole characters, at most about 30 bins, at least one character wide
    (so equal lengths make one visible bar, not a sliver)."""
    low, high = min(values), max(values)
    width = max(1, math.ceil((high - low + 1) / 30))
    return list(range(low, high + width + 1, width))


def _length_panel(plots: Plots, ax, label: str, values: list[int]) -> None:
    low, high = min(values), max(values)
    ax.hist(values, bins=length_bins(values), color=COLOURS["records"], edgecolor="white")
    if high - low < NARROW_SPAN:
        ax.set_xlim(low - 2, high + 3)
    plots.integer(ax.xaxis)
    plots.integer(ax.yaxis)
    title = f"{label}: all {len(values)} have {low:,} characters" if low == high else label
    ax.set(title=title, xlabel="characters", ylabel="records")


def lengths_plot(plots: Plots, answers: list[int], articles: list[int]) -> Path:
    """One panel per series (answers, and articles for context_vqa), each on its own scale."""
    series = [(label, values) for label, values in (("answers", answers), ("articles", articles)) if values]
    if not series:
        return plots.sentence("lengths.png", "Answer and article length", "No record was answered: no lengths.")
    fig, axes = plots.figure(len(series))
    for ax, (label, values) in zip(axes[0], series):
        _length_panel(plots, ax, label, values)
    return plots.save(fig, "lengths.png", "; ".join(f"{label}: {len(values)}" for label, values in series))


def latency_plot(plots: Plots, percentiles: dict[str, float] | None) -> Path:
    if percentiles is None:
        return plots.sentence("latency.png", "Request latency", "No request latencies were recorded.")
    fig, axes = plots.figure()
    ax = axes[0][0]
    bars = ax.bar(list(percentiles), list(percentiles.values()), color="#8172b3")
    ax.bar_label(bars, labels=[f"{value:.2f} s" for value in percentiles.values()], padding=2)
    ax.set(title="Request latency", ylabel="seconds")
    return plots.save(fig, "latency.png", json.dumps(percentiles))


def failures_chart(plots: Plots, kinds: dict[str, int]) -> bytes:
    """Failed records by kind (most first), as PNG bytes for the failures page."""
    ordered = sorted(kinds.items(), key=lambda item: (-item[1], item[0]))
    fig, axes = plots.figure()
    ax = axes[0][0]
    bars = ax.barh([kind for kind, _ in ordered], [count for _, count in ordered], color="#c44e52")
    ax.bar_label(bars, padding=3)
    ax.invert_yaxis()
    plots.integer(ax.xaxis)
    ax.set(title="Failures by kind", xlabel="records")
    return plots.png(fig)
