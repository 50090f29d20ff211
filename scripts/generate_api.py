"""Snakemake script: generate one shard's answers through an OpenAI-compatible API."""

from vqaflow.backends.api import ApiBackend, ApiSettings
from vqaflow.logs import run_logged
from vqaflow.preview import image_token_meter
from vqaflow.stages import generate_with


def main() -> None:
    generate_with(snakemake, lambda sampling, max_pixels: ApiBackend(
        ApiSettings(**snakemake.params.api), sampling, max_pixels,
        image_token_meter(snakemake.params.preview_estimate),
    ))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
