"""Snakemake script: generate one shard's answers with vLLM's offline engine."""

from vqaflow.backends._factory import build_backend
from vqaflow.logs import run_logged
from vqaflow.stages.jobs import generate_with


def main() -> None:
    generate_with(snakemake, lambda sampling, max_pixels: build_backend(
        "vllm", sampling, max_pixels, vllm=snakemake.params.vllm,
    ))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
