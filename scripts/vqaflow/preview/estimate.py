"""The preview's projection of the full run from its sample: per record, the tokens of every
request it took (every step's requests, several per record for a fan-out step, a repair and a
reformat), its latency and its cost; the full input's
totals with their intervals (:mod:`vqaflow.preview.stats`). Cost is a per-record quantity
too (its prompt and completion tokens at their prices), so its interval accounts for how
the two vary together. Shares (parse statuses, repairs, reformats, failures) get Wilson score intervals.
"""

from __future__ import annotations

import math
from collections import Counter

from ..costs import Prices
from .stats import mean_interval, total_interval, wilson_interval

CONFIDENCE = 0.95


def estimate(rows: list[dict], refined: list[dict], failed: list[dict], n_records: int, plan: dict,
             judge: list[dict] | None = None) -> dict:
    """``measured`` on the sample and ``projected`` for the full input (see the module doc).

    ``plan``: ``backend``, ``prices`` (``input_per_mtok``, ``output_per_mtok``,
    ``batch_discount``), ``max_concurrency``, ``max_total_concurrency``, ``shards``,
    ``shard_size``, ``requests_per_minute``, ``tokens_per_minute``, ``seed``.
    ``judge``: per judged record ``{"prompt_tokens", "completion_tokens"}`` when the run
    verifies (``verify.enabled``; see :func:`vqaflow.preview.run.judge_rows`), else None."""
    k = len(rows)
    prices = plan["prices"]
    costs = Prices(**prices)
    statuses = Counter(record["parse"]["status"] for record in refined)
    answered = len(refined)
    repaired = sum(bool(record["generation"].get("repaired")) for record in refined)
    reformatted = sum(bool(record["generation"].get("reformatted")) for record in refined)
    per_image = [(r["image_prompt_tokens"] - r["text_tokens"]) / r["images"]
                 for r in rows if r["images"] and r["image_prompt_tokens"] is not None]
    measured = {
        "records": k,
        "answered": answered,
        "failed": len(failed),
        "failures_by_kind": dict(Counter(f["kind"] for f in failed)),
        "asked": sum(r["asked"] for r in rows),
        "already_in_journal": sum(r["requests"] - r["asked"] for r in rows),
        "requests_per_record": mean_interval([r["requests"] for r in rows], n_records),
        "prompt_tokens_per_record": mean_interval([r["prompt_tokens"] for r in rows], n_records),
        "completion_tokens_per_record": mean_interval([r["completion_tokens"] for r in rows], n_records),
        "latency_s_per_record": mean_interval([r["latency_s"] for r in rows if r["requests"]]),
        "image_tokens_per_image": mean_interval(per_image),
        "images_measured": sum(r["images"] for r in rows if r["image_prompt_tokens"] is not None),
        "parse_status": {s: wilson_interval(statuses.get(s, 0), answered) for s in ("ok", "partial", "none")},
        "repaired": wilson_interval(repaired, answered),
        "reformatted": wilson_interval(reformatted, answered),
        "failed_share": wilson_interval(len(failed), k),
        "judge": None,
    }
    cost_rows = [costs.cost(r["prompt_tokens"], r["completion_tokens"]) for r in rows]
    projected = {
        "records": n_records,
        "requests": total_interval([r["requests"] for r in rows], n_records),
        "prompt_tokens": total_interval([r["prompt_tokens"] for r in rows], n_records),
        "completion_tokens": total_interval([r["completion_tokens"] for r in rows], n_records),
        "cost_online": None, "cost_batch": None,
        "wall_time_s": None,
    }
    if None not in cost_rows and rows:
        projected["cost_online"] = total_interval(cost_rows, n_records)
        projected["cost_batch"] = total_interval([_batch_cost(r, costs) for r in rows], n_records)
    if judge is not None:  # the verify stage: judge tokens per sampled record (0: not judged)
        measured["judge"] = _judge(judge, k, n_records, costs, projected)
    projected["wall_time_s"], wall_note = wall_time(rows, n_records, plan)
    measured["spent"] = {
        "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
        "completion_tokens": sum(r["completion_tokens"] for r in rows),
        "cost_online": None if None in cost_rows else round(sum(cost_rows), 6),
    }
    return _rounded({
        "confidence": CONFIDENCE,
        "method": ("one record drawn per stratum of the input; totals are records x the sample mean per "
                   "record, intervals mean +- t(k-1) x sd/sqrt(k) x sqrt(1-k/n); shares: Wilson score"),
        "seed": plan.get("seed"),
        "backend": plan["backend"],
        "prices": prices,
        "measured": measured,
        "projected": projected,
        "wall_time": wall_note,
    })


def _batch_cost(row: dict, costs: Prices) -> float:
    """A record's cost with backend: batch: its requests at the batch discount, its reformat
    (asked online) at the online price."""
    prompt, completion = row.get("reformat_prompt_tokens", 0), row.get("reformat_completion_tokens", 0)
    return (costs.cost(row["prompt_tokens"] - prompt, row["completion_tokens"] - completion, costs.batch_discount)
            + costs.cost(prompt, completion))


def _judge(judge: list[dict], k: int, n_records: int, costs: Prices, projected: dict) -> dict:
    """The judge's tokens per record measured (returned) and projected (into ``projected``)."""
    judged = len(judge)
    judge = judge + [{"prompt_tokens": 0, "completion_tokens": 0}] * max(0, k - judged)
    prompt_j = [j["prompt_tokens"] for j in judge]
    completion_j = [j["completion_tokens"] for j in judge]
    projected["judge_prompt_tokens"] = total_interval(prompt_j, n_records)
    projected["judge_completion_tokens"] = total_interval(completion_j, n_records)
    judge_costs = [costs.cost(j["prompt_tokens"], j["completion_tokens"]) for j in judge]
    # the judge asks online, also with backend: batch; at the api prices (its model's may differ)
    projected["judge_cost_online"] = None if None in judge_costs else total_interval(judge_costs, n_records)
    return {
        "records": judged,
        "prompt_tokens_per_record": mean_interval(prompt_j, n_records),
        "completion_tokens_per_record": mean_interval(completion_j, n_records),
    }


def _rounded(value):
    """Floats to 6 decimals, all the way down (tokens and dollars read better so)."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {key: _rounded(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def in_flight(plan: dict, requests_per_record: float = 1.0) -> tuple[int, int]:
    """``(parallel jobs, requests in flight)`` of the full run: each generate job holds
    ``min(max_concurrency, max_total_concurrency)`` of the run's ``api_slots``, no more
    jobs than shards, and a job has no more requests in flight than its shard's records ask at
    once (``requests_per_record``: of one step, on average)."""
    per_job = min(plan["max_concurrency"], plan["max_total_concurrency"])
    jobs = max(1, min(plan["shards"], plan["max_total_concurrency"] // per_job))
    return jobs, jobs * min(per_job, max(1, math.ceil(plan["shard_size"] * requests_per_record)))


def _phases(rows: list[dict]) -> dict[str, float]:
    """The mean requests per record of each phase (a pipeline's steps, the repair, the reformat:
    a job asks each after the one before)."""
    totals: dict[str, int] = {}
    for row in rows:
        for what, phase in _row_phases(row).items():
            totals[what] = totals.get(what, 0) + phase["requests"]
    return {what: total / len(rows) for what, total in totals.items()}


def _row_phases(row: dict) -> dict[str, dict]:
    return row.get("phases") or {"generate": {"requests": row["requests"], "latency_s": row["latency_s"]}}


def wall_time(rows: list[dict], n_records: int, plan: dict) -> tuple[dict | None, str]:
    """The generation wall time of the full run through the online API: per phase (each step of
    the pipeline, the repair, the reformat) the total of the per-record latencies spread over
    the requests in flight in that phase, or the configured rate limits when they are slower;
    with its interval from the latencies' and the tokens'."""
    if plan["backend"] == "vllm":
        return None, ("not projected for vllm: a preview of a few records measures model loading "
                      "and one small chunk, not the throughput of full shards")
    latencies = [r["latency_s"] for r in rows if r["requests"]]
    if len(latencies) < 1:
        return None, "not projected: no record of the sample was answered"
    jobs, flying = in_flight(plan)
    phases = {what: in_flight(plan, mean)[1] for what, mean in _phases(rows).items()}
    spread = [sum(phase["latency_s"] / phases[what] for what, phase in _row_phases(r).items()) for r in rows]
    result = total_interval(spread, n_records)
    limits = []
    if plan.get("requests_per_minute"):
        requests = total_interval([r["requests"] for r in rows], n_records)
        limits.append({key: None if v is None else 60 * v / (plan["requests_per_minute"] * jobs)
                       for key, v in requests.items()})
    if plan.get("tokens_per_minute"):
        tokens = total_interval([r["prompt_tokens"] + r["completion_tokens"] for r in rows], n_records)
        limits.append({key: None if v is None else 60 * v / (plan["tokens_per_minute"] * jobs)
                       for key, v in tokens.items()})
    for limit in limits:
        result = {key: _max(result[key], limit[key]) for key in result}
    steps = "" if len(phases) < 2 else " ({})".format(", ".join(
        f"{what}: {count} in flight" for what, count in phases.items()))
    note = (f"online API, {jobs} generate job(s) in parallel x {flying // jobs} requests in flight "
            f"({flying} in all, api.max_concurrency and api.max_total_concurrency){steps}, from the measured "
            "latencies; assumes --cores/--jobs allow that many jobs, and excludes retries and job start-up")
    if plan["backend"] == "batch":
        note += "; with backend: batch the answers come within batch.completion_window instead"
    return result, note


def _max(a, b):
    return b if a is None else a if b is None else max(a, b)
