"""Snakemake script: validate the input and split it into JSONL shards."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from vqaflow.logs import run_logged
from vqaflow.records import Keys, write_shards


def main() -> None:
    keys = snakemake.params.columns
    count = write_shards(
        snakemake.input[0],
        list(snakemake.output),
        snakemake.params.shard_size,
        Keys(image=keys["image"], conversation=keys["conversation"], id=keys["id"]),
    )
    print(f"{snakemake.input[0]}: {count} records in {len(snakemake.output)} shards")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
