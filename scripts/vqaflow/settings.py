"""Settings objects built from the validated config (shared by Snakefile and scripts)."""

from __future__ import annotations

import os

from .generate import PromptSettings
from .records import Keys, OutputKeys

KEY_ENV_FALLBACKS = ("OPENAI_API_KEY", "DF_API_KEY")


def key_env(config: dict) -> str:
    """The variable holding the API key: ``api.key_env``, else OPENAI_API_KEY, else
    DF_API_KEY (DataFlow-MM's name) when only that one is set."""
    configured = config["api"].get("key_env")
    if configured:
        return configured
    return next((name for name in KEY_ENV_FALLBACKS if os.environ.get(name)), KEY_ENV_FALLBACKS[0])


def record_keys(config: dict) -> Keys:
    keys = config["keys"]
    return Keys(image=keys["image"], conversation=keys["conversation"], id=keys["id"])


def output_keys(config: dict) -> OutputKeys:
    keys = config["keys"]
    return OutputKeys(answer=keys["answer"], refined=keys["refined"], qas=keys["qas"], id=keys["id"])


def prompt_settings(config: dict, max_pixels: int | None = None) -> PromptSettings:
    return PromptSettings(
        pipeline=config["pipeline"],
        keys=record_keys(config),
        system_prompt=config.get("system_prompt"),
        prompt=config.get("prompt"),
        image_root=config["images"]["root"],
        max_pixels=max_pixels or config["images"]["max_pixels"],
        seed=config["generation"]["seed"],
    )
