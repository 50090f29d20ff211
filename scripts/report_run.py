"""Snakemake script: the run report's first page (run.html), summary with the quality funnel,
plots, failures page, sample gallery and quality page."""

import os
from pathlib import Path

from vqaflow.columns import Columns
from vqaflow.logs import run_logged
from vqaflow.pipelines import pipeline
from vqaflow.stages import report


def write(path: str, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")


def main() -> None:
    params, output = snakemake.params, snakemake.output
    columns = Columns.from_config(params.columns)
    chosen, refined = pipeline(params.pipeline), list(snakemake.input.refined)
    stats = report.load_stats(snakemake.input.stats)
    config = params.config  # without secrets (public_config in common.smk)
    exported = report.exported_pairs(snakemake.input.export, chosen.pairs)
    stages = report.funnel(stats, exported, config["verify"]["enabled"], chosen.pairs)
    info = report.run_info(config, os.path.getmtime(snakemake.input.stats))
    links = [("Sample gallery", output.samples), ("Quality funnel", output.funnel), ("Summary", output.summary),
             ("Failures", output.failures), ("Quality", output.quality)]
    write(output.run, report.run_html(info, links))
    write(output.summary, report.summary_html(stats, info, stages))
    report.plot(report.collect(refined, chosen, columns), stages, Path(output.funnel).parent)
    write(output.failures, report.failures_html(stats, report.failure_kinds(snakemake.input.failed),
                                                Path(output.funnel).parent))
    write(output.samples, report.samples_html(refined, chosen, columns, params.image_root))
    write(output.quality, report.quality_html(stats, refined, chosen, columns, params.image_root))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
