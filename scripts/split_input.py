"""Snakemake script: validate the input, split it into JSONL shards, and move stored answers
to the journals of the shards now holding their records."""

import os

from vqaflow.columns import Columns
from vqaflow.inputs.manifest import read_file_list
from vqaflow.inputs.shards import write_shards
from vqaflow.journal import relocate
from vqaflow.logs import run_logged


def main() -> None:
    listed = snakemake.params.files
    shard_of = write_shards(
        snakemake.params.spec,
        list(snakemake.output),
        snakemake.params.shard_size,
        Columns.from_config(snakemake.params.columns),
        snakemake.params.image_root,
        read_file_list(listed) if listed and os.path.exists(listed) else None,
    )
    print(f"{snakemake.params.spec}: {len(shard_of)} records in {len(snakemake.output)} shards")
    moved = relocate(snakemake.params.journal, shard_of)
    if moved:
        print(f"moved {moved} stored answers to the journals of their new shards")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
