"""Snakemake script: generate the preview's sample of records into the journals of their shards."""

import functools
import json

from vqaflow.backends._factory import build_backend
from vqaflow.logs import run_logged
from vqaflow.preview.run import generate_sample
from vqaflow.settings import prompt_settings
from vqaflow.stages.jobs import sampling
from vqaflow.stages.reformat import ReformatSettings
from vqaflow.stages.repair import RepairSettings


def make_backend(backend: str, prompts: dict, max_pixels: int):
    """The backend the full run's generate jobs use; an online API for backend: batch too (the
    same request fingerprints, so the batch run finds these answers)."""
    return build_backend("vllm" if backend == "vllm" else "api", sampling(prompts), max_pixels,
                         api=snakemake.params.api, vllm=snakemake.params.vllm)


def main() -> None:
    prompts, backend = snakemake.params.prompts, snakemake.params.backend
    settings = prompt_settings(prompts)
    build = functools.partial(make_backend, backend, prompts, settings.max_pixels)
    if backend == "vllm":  # one engine for all shards, loaded once
        build = functools.cache(build)
    summary = generate_sample(
        list(snakemake.input),
        snakemake.params.positions,
        snakemake.params.journal_dir,
        snakemake.output.sample,
        snakemake.output.answers,
        snakemake.output.failed,
        snakemake.output.requests,
        settings,
        build,
        RepairSettings(**prompts["repair"]),
        prompts["retry_rejected"],
        parallel=backend != "vllm",
        reformat=ReformatSettings(**snakemake.params.reformat),
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
