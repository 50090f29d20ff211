"""Snakemake script: generate one shard's answers with vLLM's offline engine."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from vqaflow.backends.base import Sampling
from vqaflow.backends.vllm import VllmBackend, VllmSettings
from vqaflow.generate import generate_shard
from vqaflow.logs import run_logged
from vqaflow.settings import prompt_settings


def main() -> None:
    prompts, engine = snakemake.params.prompts, dict(snakemake.params.vllm)
    generation = prompts["generation"]
    sampling = Sampling(
        temperature=generation["temperature"],
        top_p=generation["top_p"],
        max_tokens=generation["max_tokens"],
    )
    schema = None
    if prompts["structured_output"]:
        from vqaflow.refine import answer_schema

        schema = answer_schema(prompts["pipeline"])
    settings = prompt_settings(prompts)
    backend = VllmBackend(VllmSettings(**engine), sampling, settings.max_pixels, schema)
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
