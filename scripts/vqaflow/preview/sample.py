"""The preview's sample: the input (``n`` records, in input order) is cut into ``k`` strata of
equal size and one record is drawn in each, at a position chosen by a generator seeded from
the run's ``generation.seed``: the sample covers the input evenly, and the same config draws
the same records. Standard library only (the Snakefile plans the preview's jobs with it).
"""

from __future__ import annotations

import random


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


def shards_of(positions: list[int], shard_size: int) -> list[str]:
    """The shards (file stems) holding ``positions``, as the full run splits the input."""
    return sorted({f"shard-{p // shard_size:05d}" for p in positions})
