"""Settings objects built from the validated config, for the rule scripts."""

from __future__ import annotations

from .columns import Columns
from .config_check import pipeline_section
from .pipelines import pipeline
from .prompts import PromptSettings


def prompt_settings(config: dict) -> PromptSettings:
    """How records become prompts, from the config (or the rules' ``prompts`` params, which hold
    the pipeline's own section too). Raises ``ValueError`` when a column of ``keys`` has the name
    of one of the pipeline's output fields (every request job checks it before asking)."""
    section = pipeline_section(config["pipeline"])
    chosen, columns = pipeline(config["pipeline"]), Columns.from_config(config["keys"])
    clash = [f"keys.{key}: {name}" for key, name in config["keys"].items() if name in chosen.fields]
    if clash:
        raise ValueError(f"pipeline {chosen.name} writes the output fields {', '.join(chosen.fields)}, "
                         f"but {', '.join(clash)} names one of them: choose another column name")
    return PromptSettings(
        pipeline=chosen,
        columns=columns,
        system_prompt=config["system_prompt"],
        prompt=config["prompt"],
        image_root=config["images"]["root"],
        max_pixels=config["images"]["max_pixels"],
        seed=config["generation"]["seed"],
        dedup_requests=config["dedup"]["requests"],
        structured_output=config["structured_output"],
        pipeline_settings=dict(config[section]) if section else {},
    )
