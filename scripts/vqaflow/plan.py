"""What the Snakefile imports to plan a run (``workflow/rules/common.smk`` imports this
module and no other): the config's checks and messages, the input's files and records, the
shard names, the preview's sample and the variable holding the API key.

Standard library only, through every module it imports: the Snakefile runs in Snakemake's
own environment, before any job (``tests/test_plan.py`` checks it).
"""

from __future__ import annotations

import os
import random

from .columns import Columns
from .config_check import (
    ConfigError,
    check_combinations,
    check_input,
    check_keys,
    coerce,
    gate_message,
    pipeline_section,
    public_config,
    run_summary,
    short_error,
)
from .inputs.shards import count_records, shard_names, shards_of
from .inputs.specs import input_files, input_kind

__all__ = [
    "Columns",
    "ConfigError",
    "check_combinations",
    "check_input",
    "check_keys",
    "coerce",
    "count_records",
    "gate_message",
    "input_files",
    "input_kind",
    "key_env",
    "pipeline_section",
    "public_config",
    "run_summary",
    "sample_positions",
    "shard_names",
    "shards_of",
    "short_error",
]

KEY_ENV_FALLBACKS = ("OPENAI_API_KEY", "DF_API_KEY")


def key_env(config: dict) -> str:
    """The variable holding the API key: ``api.key_env``, else OPENAI_API_KEY, else
    DF_API_KEY (DataFlow-MM's name) when only that one is set."""
    configured = config["api"].get("key_env")
    if configured:
        return configured
    return next((name for name in KEY_ENV_FALLBACKS if os.environ.get(name)), KEY_ENV_FALLBACKS[0])


def sample_positions(n_records: int, k: int, seed: int | None) -> list[int]:
    """``min(k, n)`` positions of the input, one in each of ``k`` equal strata, drawn by a
    generator seeded from ``seed`` (``None`` counts as 0). Sorted, distinct, deterministic."""
    k = min(k, n_records)
    rng = random.Random(f"vqaflow-preview:{0 if seed is None else seed}")
    positions = []
    for stratum in range(k):
        low, high = stratum * n_records // k, (stratum + 1) * n_records // k
        positions.append(low + rng.randrange(high - low))
    return positions
