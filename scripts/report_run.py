"""Snakemake script: the run report's summary table, plots and sample records."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)

from vqaflow import report
from vqaflow.logs import run_logged
from vqaflow.settings import output_keys


def main() -> None:
    keys = output_keys({"keys": snakemake.params.columns})
    pipeline, refined = snakemake.params.pipeline, list(snakemake.input.refined)
    stats = report.load_stats(snakemake.input.stats)
    estimated = report.cost(stats, *snakemake.params.prices)
    Path(snakemake.output.summary).write_text(report.summary_html(stats, estimated), encoding="utf-8")
    report.plot(report.collect(refined, pipeline, keys), stats, Path(snakemake.output.qa_pairs).parent)
    samples = report.samples_html(
        refined, pipeline, keys, snakemake.params.columns["image"], snakemake.params.image_root
    )
    Path(snakemake.output.samples).write_text(samples, encoding="utf-8")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
