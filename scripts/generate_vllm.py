"""Snakemake script: generate one shard's answers with vLLM's offline engine."""

from vqaflow.backends.vllm import VllmBackend, VllmSettings
from vqaflow.logs import run_logged
from vqaflow.stages import generate_with


def main() -> None:
    generate_with(snakemake, lambda sampling, max_pixels: VllmBackend(
        VllmSettings(**snakemake.params.vllm), sampling, max_pixels
    ))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
