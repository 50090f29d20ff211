"""What the rule scripts share: turning a rule's params into the library's settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .backends.base import Backend, Sampling
from .generate import RepairSettings, generate_shard
from .settings import prompt_settings


def sampling(prompts: dict) -> Sampling:
    """The sampling settings from the rules' ``prompts`` params."""
    generation = prompts["generation"]
    schema = None
    if prompts["structured_output"]:
        schema = prompt_settings(prompts).pipeline.answer_schema()
    return Sampling(generation["temperature"], generation["top_p"], generation["max_tokens"], schema)


def retry_token_path(journal_path: str | Path) -> Path:
    """Where a shard's retry token lives: beside its journal, outside the job's outputs (which
    Snakemake deletes before a job runs)."""
    return Path(journal_path).with_suffix(".retry")


def generate_with(smk, make_backend: Callable[[Sampling, int], Backend]) -> dict:
    """Run a generate rule: build the backend and generate the shard. When failures that
    another attempt may fix remain, a new retry token (a rule param) makes the next run of
    the same command run the shard again; otherwise the token stays as the job saw it."""
    prompts = smk.params.prompts
    settings = prompt_settings(prompts)
    summary = generate_shard(
        smk.input[0],
        smk.output.answers,
        smk.output.failed,
        smk.params.journal,
        settings,
        make_backend(sampling(prompts), settings.max_pixels),
        RepairSettings(**prompts["repair"]),
        prompts["retry_rejected"],
    )
    if summary["transient"]:
        retry_token_path(smk.params.journal).write_text(f"{time.time_ns():x}\n", encoding="utf-8")
    return summary
