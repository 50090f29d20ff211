"""Snakemake script: parse one shard's raw answers into structured QA records."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from vqaflow.dataset import refine_shard
from vqaflow.logs import run_logged
from vqaflow.settings import output_keys


def main() -> None:
    count = refine_shard(
        snakemake.input[0],
        snakemake.output[0],
        snakemake.params.pipeline,
        snakemake.params.structured_output,
        output_keys({"keys": snakemake.params.columns}),
    )
    print(f"{snakemake.input[0]}: refined {count} records")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
