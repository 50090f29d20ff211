"""Snakemake script: one shard's records and their parsed answers into output records."""

from vqaflow.columns import Columns
from vqaflow.logs import run_logged
from vqaflow.pipelines import pipeline
from vqaflow.quality.filters import FilterSettings
from vqaflow.stages.refine import refine_shard


def main() -> None:
    count = refine_shard(
        snakemake.input.shard,
        snakemake.input.generated,
        snakemake.output[0],
        pipeline(snakemake.params.pipeline),
        Columns.from_config(snakemake.params.columns),
        FilterSettings(**snakemake.params.filters),
    )
    print(f"{snakemake.input.generated}: refined {count} records")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
