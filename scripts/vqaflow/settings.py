"""Settings objects built from the validated config, for the rule scripts."""

from __future__ import annotations

from .columns import Columns
from .config_check import pipeline_section
from .pipelines import pipeline
from .prompts import PromptSettings


def prompt_settings(config: dict) -> PromptSettings:
    """How records become prompts, from the config (or the rules' ``prompts`` params, which hold
    the pipeline's own section too)."""
    section = pipeline_section(config["pipeline"])
    return PromptSettings(
        pipeline=pipeline(config["pipeline"]),
        columns=Columns.from_config(config["keys"]),
        system_prompt=config["system_prompt"],
        prompt=config["prompt"],
        image_root=config["images"]["root"],
        max_pixels=config["images"]["max_pixels"],
        seed=config["generation"]["seed"],
        dedup_requests=config["dedup"]["requests"],
        structured_output=config["structured_output"],
        pipeline_settings=dict(config[section]) if section else {},
    )
