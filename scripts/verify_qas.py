"""Snakemake script: the verify stage on one shard: a judge model checks every QA pair, and
the blind check asks the questions without the image (verify.enabled, verify.blind)."""

from vqaflow.logs import run_logged
from vqaflow.stages.jobs import verify_with


def main() -> None:
    verify_with(snakemake)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
