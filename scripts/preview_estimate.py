"""Snakemake script: the preview's estimate of the full run (estimate.json, printed) and its
sample records with their images (samples.html)."""

import json
import sys
from pathlib import Path

from vqaflow.columns import Columns
from vqaflow.jsonl import read_jsonl
from vqaflow.logs import run_logged
from vqaflow.pipelines import pipeline
from vqaflow.preview.estimate import estimate
from vqaflow.preview.run import judge_rows
from vqaflow.preview.summary import summary
from vqaflow.stages import report


def main() -> None:
    params = snakemake.params
    rows = list(read_jsonl(snakemake.input.requests))
    refined = list(read_jsonl(snakemake.input.refined))
    failed = list(read_jsonl(snakemake.input.failed))
    judge = None
    if hasattr(snakemake.input, "verified"):  # the run verifies: the judge's tokens too
        refined = list(read_jsonl(snakemake.input.verified))
        judge = judge_rows(refined)
    found = estimate(rows, refined, failed, params.records, params.plan, judge)
    Path(snakemake.output.estimate).write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    shown = getattr(snakemake.input, "verified", snakemake.input.refined)
    samples = report.samples_html([shown], pipeline(params.pipeline),
                                  Columns.from_config(params.columns), params.image_root, size=len(rows))
    Path(snakemake.output.samples).write_text(samples, encoding="utf-8")
    text = summary(found, params.run, snakemake.output.samples)
    print(text)
    print(text, file=sys.__stderr__, flush=True)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
