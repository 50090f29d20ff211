"""What the rule scripts share: turning a rule's params into the library's settings."""

from __future__ import annotations

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


def generate_with(smk, make_backend: Callable[[Sampling, int], Backend]) -> dict:
    """Run a generate rule: build the backend, generate the shard, stamp the retry token."""
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
    Path(smk.output.retry).write_text(smk.params.retry_token + "\n", encoding="utf-8")
    return summary
