"""What the run report shows: a summary table with cost, plots, and a sample of records."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from .. import images
from ..columns import Columns
from ..jsonl import read_jsonl
from ..pipelines import Pipeline
from ..prompts import record_images
from ..quality import judge

SAMPLE_SIZE = 12
THUMBNAIL = (256, 256)


def collect(refined_paths: list[str | Path], pipeline: Pipeline, columns: Columns) -> dict:
    """Per-record figures for the plots: pairs, answer and article lengths, latencies."""
    figures: dict[str, list] = {"qa_pairs": [], "answer_chars": [], "article_chars": [], "latency_s": []}
    for path in refined_paths:
        for record in read_jsonl(path):
            figures["qa_pairs"].append(len(pipeline.qas(record, columns)))
            figures["answer_chars"].append(len(record[columns.answer]))
            context = pipeline.context(record, columns)
            if context is not None:
                figures["article_chars"].append(len(context))
            latency = record["generation"].get("latency_s")
            if latency is not None:
                figures["latency_s"].append(latency)
    return figures


def summary_html(stats: dict) -> str:
    """The stats table: records, pairs, parse quality, failures by kind, tokens and cost."""
    ok = stats["records_ok"] or 1
    rows = [
        ("records in", stats["records_in"]), ("records ok", stats["records_ok"]),
        ("records failed", f"{stats['records_failed']} ({stats['failed_fraction']:.1%})"),
        ("QA pairs", stats["qa_pairs"]),
        *((f"parse status {status}", count) for status, count in stats["parse_status"].items()),
        ("truncated answers", f"{stats['truncated']} ({stats['truncated'] / ok:.1%})"),
    ]
    if "grounded_fraction" in stats:
        rows.append(("answers found in the article", f"{stats['grounded_fraction']:.1%}"))
    rows += [(f"failures: {kind}", count) for kind, count in sorted(stats["failures_by_kind"].items())]
    rows += [("prompt tokens", stats["tokens"]["prompt"]), ("completion tokens", stats["tokens"]["completion"])]
    if stats["tokens"]["batch_prompt"] or stats["tokens"]["batch_completion"]:
        rows += [("of which Batch API prompt tokens", stats["tokens"]["batch_prompt"]),
                 ("of which Batch API completion tokens", stats["tokens"]["batch_completion"])]
    rows.append(("estimated cost", "not priced (set api.price_*_per_mtok)" if stats["cost"] is None
                 else f"${stats['cost']:,.4f}"))
    body = "\n".join(f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(str(value))}</td></tr>"
                     for name, value in rows)
    return _page("Run summary", f"<table>\n{body}\n</table>")


def plot(figures: dict, stats: dict, out_dir: str | Path) -> list[Path]:
    """The four PNG plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        made.append(out_dir / name)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    counts = figures["qa_pairs"]
    ax.hist(counts, bins=range(0, max(counts, default=0) + 2), align="left", color="#4c72b0")
    ax.set(title="QA pairs per record", xlabel="QA pairs", ylabel="records")
    save(fig, "qa_pairs.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    series = [("answer", figures["answer_chars"])]
    if figures["article_chars"]:
        series.append(("article", figures["article_chars"]))
    for label, values in series:
        ax.hist(values, bins=30, alpha=0.6, label=label)
    ax.set(title="Answer and article length", xlabel="characters", ylabel="records")
    ax.legend()
    save(fig, "lengths.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    percentiles = latency_percentiles(figures["latency_s"])
    ax.bar(list(percentiles), list(percentiles.values()), color="#55a868")
    ax.set(title="Request latency", ylabel="seconds")
    save(fig, "latency.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    kinds = stats["failures_by_kind"] or {"none": 0}
    ax.barh(list(kinds), list(kinds.values()), color="#c44e52")
    ax.set(title="Failures by reason", xlabel="records")
    save(fig, "failures.png")
    return made


def latency_percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of the request latencies (zeros when there are none)."""
    ordered = sorted(latencies)
    if not ordered:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}


def _thumbnail(ref: str, image_root: str) -> str:
    if images.is_url(ref):
        return f'<img src="{html.escape(ref)}" width="128">'
    if images.is_digest(ref):
        return f"<em>embedded image {html.escape(ref[:19])}…</em>"
    try:
        image = images.load(images.resolve(ref, image_root), THUMBNAIL[0] * THUMBNAIL[1] * 4)
    except images.ImageError as err:
        return f"<em>{html.escape(str(err))}</em>"
    image.thumbnail(THUMBNAIL)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return f'<img src="data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def samples_html(refined_paths: list[str | Path], pipeline: Pipeline, columns: Columns,
                 image_root: str, size: int = SAMPLE_SIZE) -> str:
    """The first ``size`` records of the run: thumbnails, article and pairs, for eyeballing."""
    cards = []
    for path in refined_paths:
        for record in read_jsonl(path):
            if len(cards) == size:
                break
            refs = record_images(record, columns)
            qas = pipeline.qas(record, columns)
            context = pipeline.context(record, columns)
            article = f"<p>{html.escape(context)}</p>" if context is not None else ""
            pairs = "".join(f"<li><b>{html.escape(qa['question'])}</b> {html.escape(qa['answer'])}</li>"
                            for qa in qas)
            cards.append(
                f"<section><h3>{html.escape(str(record[columns.id]))} "
                f"<small>parse: {record['parse']['status']}</small></h3>"
                f"{''.join(_thumbnail(ref, image_root) for ref in refs)}{article}<ol>{pairs}</ol></section>"
            )
    return _page("Sample records", "\n".join(cards) or "<p>No records were generated.</p>")


def quality_html(stats: dict, refined_paths: list[str | Path], pipeline: Pipeline, columns: Columns,
                 image_root: str, size: int = SAMPLE_SIZE) -> str:
    """What each quality step found: a funnel from generated pairs to accepted pairs, flags
    by rule, and a sample of the pairs the judge rejected, with its reason and the image."""
    quality = stats["quality"]
    rows = [
        ("records skipped as near-duplicate images", quality["duplicates_skipped"]),
        ("records answered by an identical request of an earlier record", quality.get("identical_requests", 0)),
        ("pairs generated", quality["pairs"]),
        ("pairs flagged by a rule", quality["flagged_pairs"]),
        *((f"flag: {flag}", count) for flag, count in quality["flags"].items()),
        ("pairs judged", quality["judged"]),
        ("pairs the judge accepted", quality["accepted"]),
        *((f"rejected: {reason}", count) for reason, count in quality["rejected"].items()),
        ("pairs the judge did not cover", quality["unjudged"]),
        ("judge tokens", f"{quality['judge_tokens']['prompt']} prompt, {quality['judge_tokens']['completion']} completion"),
    ]
    if quality["judge_cost"] is not None:
        rows.append(("judge cost", f"${quality['judge_cost']:,.4f}"))
    table = "\n".join(f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(str(value))}</td></tr>"
                      for name, value in rows)
    cards = []
    for path in refined_paths:
        for record in read_jsonl(path):
            rejected = [qa for qa in pipeline.qas(record, columns) if qa.get("verdict") and not judge.accepted(qa["verdict"])]
            if rejected and len(cards) < size:
                pairs = "".join(
                    f"<li><b>{html.escape(qa['question'])}</b> {html.escape(qa['answer'])}"
                    f"<br><small>judge: {html.escape(qa['verdict'].get('reason') or '')}</small></li>"
                    for qa in rejected)
                thumbs = "".join(_thumbnail(ref, image_root) for ref in record_images(record, columns))
                cards.append(f"<section><h3>{html.escape(str(record[columns.id]))}</h3>{thumbs}<ol>{pairs}</ol></section>")
    sample = "\n".join(cards) or "<p>The judge rejected no pair (or did not run: verify.enabled).</p>"
    return _page("Quality", f"<table>\n{table}\n</table>\n{diversity_html(stats.get('diversity'))}"
                            f"\n<h3>Rejected pairs</h3>\n{sample}")


def diversity_html(diversity: dict | None) -> str:
    """How diverse the questions are: the share of distinct questions and the most repeated
    templates (numbers as #, names and noun phrases as _)."""
    if not diversity:
        return ""
    share = f"{diversity['unique_share']:.1%}"
    head = (f"<h3>Question diversity</h3>\n<p>{diversity['unique_questions']} distinct questions of "
            f"{diversity['questions']} ({share}).</p>")
    rows = "\n".join(f"<tr><td>{html.escape(t['template'])}</td><td>{t['count']}</td><td>{t['share']:.1%}</td></tr>"
                     for t in diversity["top_templates"])
    note = "" if diversity["templates_exact"] else "<p><small>Counts are lower bounds (many templates).</small></p>"
    return (f"{head}\n<table>\n<tr><th>most repeated templates</th><th>questions</th><th>share</th></tr>\n"
            f"{rows}\n</table>{note}")


def _page(title: str, body: str) -> str:
    style = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
             "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             "section{border-bottom:1px solid #ddd;padding:.5em 0}img{margin-right:.5em}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{style}</style></head><body><h2>{title}</h2>\n{body}\n</body></html>\n")


def load_stats(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
