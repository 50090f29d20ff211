"""Snakemake script: concatenate the shards' JSONL files in shard order."""

import shutil

from vqaflow.logs import run_logged


def main() -> None:
    with open(snakemake.output[0], "wb") as out:
        for path in snakemake.input:
            with open(path, "rb") as handle:
                shutil.copyfileobj(handle, out)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
