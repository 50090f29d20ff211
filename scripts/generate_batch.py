"""Snakemake script: generate one shard's answers through the OpenAI Batch API."""

from vqaflow.backends.api import ApiSettings
from vqaflow.backends.batch import BatchBackend, BatchSettings
from vqaflow.logs import run_logged
from vqaflow.stages import generate_with


def main() -> None:
    generate_with(snakemake, lambda sampling, max_pixels: BatchBackend(
        ApiSettings(**snakemake.params.api), BatchSettings(**snakemake.params.batch), sampling,
        max_pixels, snakemake.params.state,
    ))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
