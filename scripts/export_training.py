"""Snakemake script: export the refined records as LLaVA conversations and a Parquet table."""

import json

from vqaflow.columns import Columns
from vqaflow.logs import run_logged
from vqaflow.pipelines import pipeline
from vqaflow.stages.export import ExportFilters, export


def main() -> None:
    counts = export(
        list(snakemake.input),
        snakemake.output.conversations,
        snakemake.output.table,
        pipeline(snakemake.params.pipeline),
        Columns.from_config(snakemake.params.columns),
        ExportFilters(**snakemake.params.filters),
    )
    print(json.dumps(counts))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
