"""Snakemake script: a judge model checks every QA pair of one shard."""

from vqaflow.logs import run_logged
from vqaflow.stages.jobs import verify_with


def main() -> None:
    verify_with(snakemake)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
