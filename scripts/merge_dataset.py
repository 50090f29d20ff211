"""Snakemake script: merge the refined shards into the dataset, failed.jsonl and stats.json."""

import json

from vqaflow.columns import Columns
from vqaflow.costs import Prices
from vqaflow.jsonl import read_jsonl
from vqaflow.logs import run_logged
from vqaflow.pipelines import pipeline
from vqaflow.stages.merge import merge


def main() -> None:
    stats = merge(
        list(snakemake.input.refined),
        list(snakemake.input.failed),
        snakemake.output.dataset,
        snakemake.output.failed,
        snakemake.output.stats,
        snakemake.params.output_format,
        pipeline(snakemake.params.pipeline),
        Columns.from_config(snakemake.params.columns),
        Prices(**snakemake.params.prices),
        sum(1 for path in snakemake.input.duplicates for _ in read_jsonl(path)),
        snakemake.params.structured_output,
        list(snakemake.output.side),
    )
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
