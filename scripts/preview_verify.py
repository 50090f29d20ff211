"""Snakemake script: the judge and the blind check on the preview's records, into the journals
of their shards."""

import functools
import json

from vqaflow.logs import run_logged
from vqaflow.preview.run import verify_sample
from vqaflow.settings import prompt_settings
from vqaflow.stages.jobs import verify_backends


def main() -> None:
    judge = snakemake.params.judge
    settings = prompt_settings(snakemake.params.prompts)
    build = functools.partial(verify_backends, judge, settings.max_pixels)
    if judge["backend"] == "vllm":  # one engine for all shards, loaded once
        build = functools.cache(build)
    summary = verify_sample(
        snakemake.input.refined,
        snakemake.input.sample,
        snakemake.params.journal_dir,
        snakemake.output.verified,
        snakemake.output.failed,
        settings,
        build,
        judge["prompt"] or settings.pipeline.judge_prompt,
        judge["model"],
        snakemake.params.prompts["retry_rejected"],
        parallel=judge["backend"] != "vllm",
        auto=judge["structured_output"] == "auto",
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
