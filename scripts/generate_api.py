"""Snakemake script: generate one shard's answers through an OpenAI-compatible API."""

from vqaflow.backends._factory import build_backend
from vqaflow.backends.tokens import image_token_meter
from vqaflow.logs import run_logged
from vqaflow.stages.jobs import generate_with


def main() -> None:
    generate_with(snakemake, lambda sampling, max_pixels: build_backend(
        "api", sampling, max_pixels, api=snakemake.params.api,
        image_tokens=image_token_meter(snakemake.params.preview_estimate),
    ))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
