"""Snakemake script: generate one shard's answers through an OpenAI-compatible API."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from vqaflow.backends.api import ApiBackend, ApiSettings
from vqaflow.backends.base import Sampling
from vqaflow.generate import generate_shard
from vqaflow.logs import run_logged
from vqaflow.settings import prompt_settings


def main() -> None:
    prompts, api = snakemake.params.prompts, dict(snakemake.params.api)
    generation = prompts["generation"]
    response_format = None
    if prompts["structured_output"]:
        from vqaflow.refine import answer_schema

        response_format = {
            "type": "json_schema",
            "json_schema": {
                "name": prompts["pipeline"],
                "schema": answer_schema(prompts["pipeline"]),
                "strict": True,
            },
        }
    sampling = Sampling(
        temperature=generation["temperature"],
        top_p=generation["top_p"],
        max_tokens=generation["max_tokens"],
        response_format=response_format,
    )
    settings = prompt_settings(prompts)
    backend = ApiBackend(ApiSettings(**api), sampling, settings.max_pixels)
    generate_shard(
        snakemake.input[0],
        snakemake.output.answers,
        snakemake.output.failed,
        snakemake.params.journal,
        settings,
        backend,
    )


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
