"""Means, totals and shares measured on a sample, with 95% intervals.

A population total is ``n`` times the sample mean; its interval is ``n * (mean ± t * se)``,
with ``se = sd / sqrt(k) * sqrt(1 - k/n)`` (the standard error of a mean of ``k`` draws
without replacement, the finite population correction making it 0 when every record was
drawn) and ``t`` the Student quantile for ``k - 1`` degrees of freedom. Shares get Wilson
score intervals.
"""

from __future__ import annotations

import math
import statistics

Z_95 = 1.959963984540054
_T_SMALL = {1: 12.7062047, 2: 4.3026527, 3: 3.1824463, 4: 2.7764451}  # where the expansion is off


def t_quantile(df: int, z: float = Z_95) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom (Cornish-
    Fisher expansion around the normal quantile, within 0.02% from df 5 on; exact values
    below)."""
    if df < 1:
        raise ValueError("t_quantile needs at least one degree of freedom")
    if z == Z_95 and df in _T_SMALL:
        return _T_SMALL[df]
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_interval(values: list[float], population: int | None = None) -> dict:
    """The sample mean with its standard error and 95% interval (``population``: the
    number of units sampled from, for the finite population correction)."""
    k = len(values)
    if k == 0:
        return {"mean": None, "se": None, "low": None, "high": None}
    mean = statistics.fmean(values)
    if k == 1:
        return {"mean": mean, "se": None, "low": None, "high": None}
    fpc = math.sqrt(max(0.0, 1 - k / population)) if population else 1.0
    se = statistics.stdev(values) / math.sqrt(k) * fpc
    half = t_quantile(k - 1) * se
    return {"mean": mean, "se": se, "low": mean - half, "high": mean + half}


def total_interval(values: list[float], population: int) -> dict:
    """The population total ``population * mean`` with its 95% interval (never below 0
    for quantities that cannot be negative)."""
    stats = mean_interval(values, population)
    if stats["mean"] is None:
        return {"value": None, "low": None, "high": None}
    scale = lambda x: None if x is None else population * x  # noqa: E731
    low = scale(stats["low"])
    if low is not None and min(values) >= 0:
        low = max(0.0, low)
    return {"value": scale(stats["mean"]), "low": low, "high": scale(stats["high"])}


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> dict:
    """A share with its Wilson score interval."""
    if trials == 0:
        return {"value": None, "low": None, "high": None}
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2))
    return {"value": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half)}
