"""Snakemake script: the run report's summary table, plots and sample records."""

from pathlib import Path

from vqaflow.columns import Columns
from vqaflow.logs import run_logged
from vqaflow.pipelines import pipeline
from vqaflow.stages import report


def main() -> None:
    columns = Columns.from_config(snakemake.params.columns)
    chosen, refined = pipeline(snakemake.params.pipeline), list(snakemake.input.refined)
    stats = report.load_stats(snakemake.input.stats)
    Path(snakemake.output.summary).write_text(report.summary_html(stats), encoding="utf-8")
    report.plot(report.collect(refined, chosen, columns), stats, Path(snakemake.output.qa_pairs).parent)
    samples = report.samples_html(refined, chosen, columns, snakemake.params.image_root)
    Path(snakemake.output.samples).write_text(samples, encoding="utf-8")
    quality = report.quality_html(stats, refined, chosen, columns, snakemake.params.image_root)
    Path(snakemake.output.quality).write_text(quality, encoding="utf-8")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
