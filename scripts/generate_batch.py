"""Snakemake script: generate one shard's answers through the OpenAI Batch API."""

from vqaflow.backends._factory import build_backend
from vqaflow.logs import run_logged
from vqaflow.stages.jobs import generate_with


def main() -> None:
    generate_with(snakemake, lambda sampling, max_pixels: build_backend(
        "batch", sampling, max_pixels, api=snakemake.params.api, batch=snakemake.params.batch,
        state_path=snakemake.params.state,
    ))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
