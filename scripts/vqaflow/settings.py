"""Settings objects built from the validated config (shared by the Snakefile and scripts).

Standard library only: the Snakefile's helpers import this module.
"""

from __future__ import annotations

import os

from .columns import Columns
from .pipelines import pipeline
from .prompts import PromptSettings

KEY_ENV_FALLBACKS = ("OPENAI_API_KEY", "DF_API_KEY")


def key_env(config: dict) -> str:
    """The variable holding the API key: ``api.key_env``, else OPENAI_API_KEY, else
    DF_API_KEY (DataFlow-MM's name) when only that one is set."""
    configured = config["api"].get("key_env")
    if configured:
        return configured
    return next((name for name in KEY_ENV_FALLBACKS if os.environ.get(name)), KEY_ENV_FALLBACKS[0])


def prompt_settings(config: dict) -> PromptSettings:
    """How records become prompts, from the config (or the rules' ``prompts`` params)."""
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
    )
