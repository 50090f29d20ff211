"""What the run report shows: the run (model, backend, pipeline, input, date, version, config
digest) and one-click links on its first page, a summary with the quality funnel and cost,
plots (:mod:`vqaflow.stages.report_plots`), the failures, a gallery of sample records, and the quality
page."""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from pathlib import Path

from .. import __version__, images
from ..columns import Columns
from ..digests import value_digest
from ..jsonl import read_jsonl
from ..pipelines import Pipeline
from ..prompts import record_images
from ..quality import judge
from . import report_plots
from .report_plots import Plots

SAMPLE_SIZE = 12
THUMBNAIL = (256, 256)
CONFIG_DIGEST_CHARS = 16
FAILURE_EXAMPLES = 3  # errors shown per kind of failure


def collect(refined_paths: list[str | Path], pipeline: Pipeline, columns: Columns) -> dict:
    """Per-record figures for the plots: pairs, answer and article lengths, latencies (and
    ``pipeline``: the name of a pipeline without pairs, else None)."""
    figures: dict = {"qa_pairs": [], "answer_chars": [], "article_chars": [], "latency_s": [],
                     "pipeline": None if pipeline.pairs else pipeline.name}
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


def funnel(stats: dict, exported: int, judged: bool, pairs: bool = True) -> list[tuple[str, int, str]]:
    """The quality funnel as ``(stage, count, unit)``: records, answered, parsed (ok or partial),
    then pairs: all, passing the rule filters (no flag), accepted by the judge (only when it
    ran) and exported. Every count is stats.json's but ``exported`` (the export's pairs; for a
    pipeline without ``pairs``, the records it exported: the funnel ends there)."""
    status, quality = stats["parse_status"], stats["quality"]
    stages = [
        ("records", stats["records_in"], "records"),
        ("answered", stats["records_ok"], "records"),
        ("parsed (ok or partial)", status["ok"] + status["partial"], "records"),
    ]
    if not pairs:
        return [*stages, ("exported", exported, "records")]
    stages += [
        ("QA pairs", stats["qa_pairs"], "pairs"),
        ("passing the rule filters", stats["qa_pairs"] - quality["flagged_pairs"], "pairs"),
    ]
    if judged:
        stages.append(("accepted by the judge", quality["accepted"], "pairs"))
    stages.append(("exported", exported, "pairs"))
    return stages


def exported_pairs(parquet_path: str | Path, pairs: bool = True) -> int:
    """The pairs in the export's Parquet table (its ``questions`` lists); for a pipeline without
    ``pairs``, its rows (one per exported record)."""
    import polars as pl

    scan = pl.scan_parquet(parquet_path)
    if not pairs:
        return int(scan.select(pl.len()).collect().item())
    if "questions" not in scan.collect_schema().names():  # an empty export has no columns
        return 0
    return int(scan.select(pl.col("questions").list.len().sum()).collect().item() or 0)


def run_info(config: dict, finished: float) -> list[tuple[str, str]]:
    """What the run was: model, backend, pipeline, input, judge, when it finished (``finished``:
    a POSIX time), the vqaflow version and a digest of ``config`` (the config without secrets,
    :func:`vqaflow.config_check.public_config`): two runs with one digest had one config."""
    backend = config["backend"]
    section = "vllm" if backend == "vllm" else "api"
    model = config[section]["model"]
    rows = [("run", config["run"]), ("model", model), ("backend", backend), ("pipeline", config["pipeline"]),
            ("input", config["input"])]
    verify = config.get("verify") or {}
    if verify.get("enabled"):
        rows.append(("judge", verify.get("model") or (verify.get(section) or {}).get("model") or model))
    when = datetime.datetime.fromtimestamp(finished, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows += [("finished", when), ("vqaflow version", __version__),
             ("config digest", value_digest(config, CONFIG_DIGEST_CHARS))]
    return rows


def _rows(rows: list[tuple[str, object]]) -> str:
    body = "\n".join(f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(str(value))}</td></tr>"
                     for name, value in rows)
    return f"<table>\n{body}\n</table>"


def _show(label: str, result_path: str) -> str:
    """A link that opens a result of Snakemake's report in one click (its own ``app`` and
    ``results``; an image or an HTML page by the file's suffix)."""
    content = "img" if result_path.endswith(".png") else "html"
    target = json.dumps(result_path)
    script = f"app.setView({{content:'{content}',contentPath:results[{target}].data_uri,resultPath:{target}}})"
    return f'<a href="javascript:{html.escape(script)}">{html.escape(label)}</a>'


def run_html(info: list[tuple[str, str]], links: list[tuple[str, str]]) -> str:
    """The report's first page (included by workflow/report/workflow.rst): the run's metadata and
    one-click links (``links``: label and result path) to the gallery, funnel and the rest."""
    shown = " · ".join(_show(label, path) for label, path in links)
    return f"<p><b>Open:</b> {shown}</p>\n{_rows(info)}\n"


def summary_html(stats: dict, info: list[tuple[str, str]] | None = None,
                 stages: list[tuple[str, int, str]] | None = None) -> str:
    """The run (``info``), the quality funnel (``stages``) and the stats table: records, pairs,
    parse quality, failures by kind, tokens and cost."""
    ok = stats["records_ok"] or 1
    unverified = stats.get("verify_failed", 0)  # answered, but the judge could not verify them
    failed = f"{stats['records_failed'] + unverified} ({stats['failed_fraction']:.1%})"
    rows = [
        ("records in", stats["records_in"]), ("records ok", stats["records_ok"]),
        ("records failed", failed + (f", {unverified} of them not verified by the judge" if unverified else "")),
        ("QA pairs", stats["qa_pairs"]),
        *((f"records with {name}", count) for name, count in stats.get("fields", {}).items()),
        *((f"parse status {status}", count) for status, count in stats["parse_status"].items()),
        ("truncated answers", f"{stats['truncated']} ({stats['truncated'] / ok:.1%})"),
    ]
    if "grounded_fraction" in stats:
        rows.append(("answers found in the article", f"{stats['grounded_fraction']:.1%}"))
    rows += [(f"failures: {kind}", count) for kind, count in sorted(stats["failures_by_kind"].items())]
    rows += [(f"judge failures: {kind}", n) for kind, n in sorted(stats.get("verify_failures_by_kind", {}).items())]
    rows += [("prompt tokens", stats["tokens"]["prompt"]), ("completion tokens", stats["tokens"]["completion"])]
    if stats["tokens"]["batch_prompt"] or stats["tokens"]["batch_completion"]:
        rows += [("of which Batch API prompt tokens", stats["tokens"]["batch_prompt"]),
                 ("of which Batch API completion tokens", stats["tokens"]["batch_completion"])]
    rows.append(("estimated cost", "not priced (set api.price_*_per_mtok)" if stats["cost"] is None
                 else f"${stats['cost']:,.4f}"))
    parts = [f"<h3>Run</h3>\n{_rows(info)}"] if info else []
    if stages:
        parts.append("<h3>Quality funnel</h3>\n" + _rows([(f"{stage} ({unit})", f"{count:,}")
                                                          for stage, count, unit in stages]))
    parts.append(f"<h3>Counts</h3>\n{_rows(rows)}")
    return _page("Run summary", "\n".join(parts))


def plot(figures: dict, stages: list[tuple[str, int, str]], out_dir: str | Path) -> list[Path]:
    """The PNG plots (funnel, QA pairs, lengths, latency); returns their paths."""
    plots = Plots(out_dir)
    report_plots.funnel_plot(plots, stages)
    report_plots.qa_pairs_plot(plots, figures["qa_pairs"], figures.get("pipeline"))
    report_plots.lengths_plot(plots, figures["answer_chars"], figures["article_chars"])
    report_plots.latency_plot(plots, latency_percentiles(figures["latency_s"]))
    return plots.made


def latency_percentiles(latencies: list[float]) -> dict[str, float] | None:
    """p50, p90, p99 and max of the request latencies (None when there are none)."""
    ordered = sorted(latencies)
    if not ordered:
        return None
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}


def failure_kinds(failed_path: str | Path, examples: int = FAILURE_EXAMPLES) -> dict[str, dict]:
    """Per kind of failure: how many records, how many transient, and the first errors."""
    kinds: dict[str, dict] = {}
    for failure in read_jsonl(failed_path):
        kind = kinds.setdefault(failure["kind"], {"records": 0, "transient": 0, "examples": []})
        kind["records"] += 1
        kind["transient"] += bool(failure.get("transient"))
        if len(kind["examples"]) < examples:
            kind["examples"].append(f"{failure['id']}: {failure['error']}")
    return kinds


def failures_html(stats: dict, kinds: dict[str, dict], out_dir: str | Path) -> str:
    """The failures page: a sentence when nothing failed, else the chart by kind and a table
    with how many are transient (the next run asks them again) and the first errors."""
    if not kinds:
        total = stats["records_in"]
        text = f"No failures: all {total} records were answered." if total else "No failures: the input had no records."
        return _page("Failures", f"<p>{text}</p>")
    chart = report_plots.failures_chart(Plots(out_dir), {kind: found["records"] for kind, found in kinds.items()})
    rows = "\n".join(
        f"<tr><th>{html.escape(kind)}</th><td>{found['records']}</td><td>{found['transient']}</td>"
        f"<td>{'<br>'.join(html.escape(example) for example in found['examples'])}</td></tr>"
        for kind, found in sorted(kinds.items(), key=lambda item: -item[1]["records"]))
    table = (f"<table>\n<tr><th>kind</th><th>records</th><th>transient</th><th>first errors</th></tr>\n{rows}\n"
             "</table>")
    intro = (f"<p>{stats['records_failed']} of {stats['records_in']} records failed ({stats['failed_fraction']:.1%}); "
             "transient ones are asked again by the next run of the same command. Every failure is in "
             "<code>failed.jsonl</code>.</p>")
    image = f'<img alt="failures by kind" src="data:image/png;base64,{base64.b64encode(chart).decode()}">'
    return _page("Failures", f"{intro}\n{image}\n{table}")


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


def _card(record: dict, pipeline: Pipeline, columns: Columns, image_root: str) -> str:
    """One record of the gallery: its thumbnails and image paths, the article (folded), its
    output fields (a caption, ...) and pairs."""
    refs = record_images(record, columns)
    context = pipeline.context(record, columns)
    article = (f"<details><summary>article ({len(context):,} characters)</summary><p>{html.escape(context)}</p>"
               "</details>" if context is not None else "")
    fields = "".join(f"<p><b>{html.escape(name)}</b>: {html.escape(_shown(value))}</p>"
                     for name, value in pipeline.values(record).items() if not pipeline.pairs)
    pairs = "".join(f"<li><b>{html.escape(qa['question'])}</b> {html.escape(qa['answer'])}</li>"
                    for qa in pipeline.qas(record, columns))
    named = ", ".join(html.escape(ref if len(ref) < 80 else ref[:40] + "…") for ref in refs)
    return (f"<section><h3>{html.escape(str(record[columns.id]))} "
            f"<small>parse: {record['parse']['status']}</small></h3>"
            f"{''.join(_thumbnail(ref, image_root) for ref in refs)}<p><small>{named}</small></p>"
            f"{article}{fields}<ol>{pairs}</ol></section>")


def _shown(value) -> str:
    """An output field's value as text (a structure as JSON)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def samples_html(refined_paths: list[str | Path], pipeline: Pipeline, columns: Columns,
                 image_root: str, size: int = SAMPLE_SIZE) -> str:
    """A gallery of the first ``size`` records of the run: thumbnails, pairs and the article."""
    cards = []
    for path in refined_paths:
        for record in read_jsonl(path):
            if len(cards) == size:
                break
            cards.append(_card(record, pipeline, columns, image_root))
    body = f'<div class="gallery">\n{chr(10).join(cards)}\n</div>' if cards else "<p>No records were generated.</p>"
    return _page("Sample records", body)


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
             "section{border-bottom:1px solid #ddd;padding:.5em 0}img{margin-right:.5em;max-width:100%}"
             ".gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:1em}"
             ".gallery section{border:1px solid #ddd;border-radius:6px;padding:.5em}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{style}</style></head><body><h2>{title}</h2>\n{body}\n</body></html>\n")


def load_stats(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
