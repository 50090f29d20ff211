"""Snakemake script: every shard's finished records with the copies of identical requests
filled in and questions repeated across the dataset flagged (final/<shard>.jsonl)."""

import json

from vqaflow.columns import Columns
from vqaflow.logs import run_logged
from vqaflow.pipelines import pipeline
from vqaflow.stages.finish import finish


def main() -> None:
    counts = finish(
        list(snakemake.input.records),
        list(snakemake.input.shards),
        list(snakemake.output.records),
        snakemake.output.failed,
        list(snakemake.input.failed),
        snakemake.input.copies[0] if snakemake.input.copies else None,
        pipeline(snakemake.params.pipeline),
        Columns.from_config(snakemake.params.columns),
    )
    print(json.dumps(counts))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
