"""The preview's sampling, interval math and projection, and the measured image tokens."""

from __future__ import annotations

import json
import math
import random

import pytest

from vqaflow.backends.api import ApiBackend, ApiSettings
from vqaflow.backends.base import GenerationTask
from vqaflow.backends.tokens import IMAGE_TOKEN_ESTIMATE, ImageTokens, image_token_meter, image_tokens, text_tokens
from vqaflow.plan import sample_positions, shards_of
from vqaflow.preview.estimate import estimate, in_flight, wall_time
from vqaflow.preview.run import judge_rows
from vqaflow.preview.stats import mean_interval, t_quantile, total_interval, wilson_interval
from vqaflow.preview.summary import summary
from vqaflow.prompts import Prompt
from workflow_helpers import DEMO_IMAGES, sampling, settings_from_defaults

PLAN = {
    "backend": "api", "prices": {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "batch_discount": 0.5},
    "max_concurrency": 64, "max_total_concurrency": 256, "requests_per_minute": None,
    "tokens_per_minute": None, "shards": 10, "shard_size": 500, "seed": 0,
}


def rows(values: list[tuple[int, int]], latency: float = 1.0) -> list[dict]:
    return [{"id": f"r{n}", "index": n, "shard": "shard-00000", "requests": 1, "asked": 1,
             "prompt_tokens": p, "completion_tokens": c, "latency_s": latency, "images": 1,
             "text_tokens": 10, "image_prompt_tokens": p} for n, (p, c) in enumerate(values)]


def refined(n: int, statuses=("ok",), repaired: int = 0) -> list[dict]:
    return [{"parse": {"status": statuses[i % len(statuses)]}, "generation": {"repaired": i < repaired}}
            for i in range(n)]


# --- sampling ---------------------------------------------------------------------------


def test_one_position_in_each_equal_stratum():
    positions = sample_positions(1000, 20, seed=0)
    assert len(positions) == 20 == len(set(positions))
    assert [p // 50 for p in positions] == list(range(20))


def test_strata_of_unequal_size_still_cover_the_input():
    for n, k in [(7, 3), (101, 20), (20, 20), (21, 20)]:
        positions = sample_positions(n, k, seed=5)
        assert len(set(positions)) == k and positions == sorted(positions)
        assert all(i * n // k <= p < (i + 1) * n // k for i, p in enumerate(positions))


def test_sample_is_deterministic_from_the_seed():
    assert sample_positions(10_000, 20, 0) == sample_positions(10_000, 20, 0)
    assert sample_positions(10_000, 20, 0) != sample_positions(10_000, 20, 1)
    assert sample_positions(10_000, 20, None) == sample_positions(10_000, 20, 0)


def test_a_sample_larger_than_the_input_is_the_input():
    assert sample_positions(5, 20, 3) == [0, 1, 2, 3, 4]


def test_shards_of_positions():
    assert shards_of([0, 49, 50, 199], 50) == ["shard-00000", "shard-00001", "shard-00003"]


# --- interval math ----------------------------------------------------------------------


@pytest.mark.parametrize(("df", "exact"), [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764),
                                           (9, 2.2622), (19, 2.0930), (49, 2.0096), (99, 1.9842)])
def test_t_quantile(df, exact):
    assert t_quantile(df) == pytest.approx(exact, abs=2e-3)


def test_mean_interval_by_hand():
    found = mean_interval([1, 2, 3, 4, 5])
    assert found["mean"] == 3
    assert found["se"] == pytest.approx(math.sqrt(2.5) / math.sqrt(5))
    assert found["high"] - found["mean"] == pytest.approx(2.7764 * found["se"], rel=1e-3)
    assert found["mean"] - found["low"] == pytest.approx(found["high"] - found["mean"])


def test_finite_population_correction():
    values = [1, 2, 3, 4, 5]
    assert mean_interval(values, population=5)["se"] == 0, "the whole population: no doubt"
    wide, narrower = mean_interval(values), mean_interval(values, population=10)
    assert narrower["se"] == pytest.approx(wide["se"] * math.sqrt(1 - 5 / 10))


def test_mean_interval_of_too_few_values():
    assert mean_interval([])["mean"] is None
    assert mean_interval([7]) == {"mean": 7, "se": None, "low": None, "high": None}


def test_total_interval_scales_and_never_goes_below_zero():
    found = total_interval([0, 0, 0, 100], population=1000)
    assert found["value"] == 25_000 and found["low"] == 0 and found["high"] > 25_000


def test_wilson_interval():
    assert wilson_interval(0, 20) == pytest.approx({"value": 0, "low": 0, "high": 0.16113}, abs=1e-4)
    assert wilson_interval(10, 20) == pytest.approx({"value": 0.5, "low": 0.29929, "high": 0.70071},
                                                            abs=1e-4)
    assert wilson_interval(0, 0)["value"] is None


def test_the_interval_covers_the_true_total_about_95_percent_of_the_time():
    rng = random.Random(42)
    population = [int(rng.lognormvariate(6, 0.6)) for _ in range(5000)]
    truth = sum(population)
    covered = 0
    for seed in range(300):
        sample = [population[p] for p in sample_positions(len(population), 30, seed)]
        interval = total_interval(sample, len(population))
        covered += interval["low"] <= truth <= interval["high"]
    assert 0.89 <= covered / 300 <= 0.99, covered / 300


# --- the projection ---------------------------------------------------------------------


def test_projection_of_tokens_and_cost():
    sample = rows([(1000, 500), (1200, 400), (800, 600), (1000, 500)])
    found = estimate(sample, refined(4, ("ok", "ok", "ok", "partial"), repaired=1), [], 10_000, PLAN)
    projected, measured = found["projected"], found["measured"]
    assert projected["records"] == 10_000
    assert projected["prompt_tokens"]["value"] == pytest.approx(10_000_000)
    assert projected["completion_tokens"]["value"] == pytest.approx(5_000_000)
    per_record = [(p * 0.15 + c * 0.6) / 1e6 for p, c in [(1000, 500), (1200, 400), (800, 600), (1000, 500)]]
    assert projected["cost_online"] == pytest.approx(total_interval(per_record, 10_000))
    assert projected["cost_online"]["value"] == pytest.approx(10_000_000 * 0.15 / 1e6 + 5_000_000 * 0.6 / 1e6)
    assert projected["cost_batch"]["value"] == pytest.approx(projected["cost_online"]["value"] / 2)
    assert projected["cost_batch"]["low"] == pytest.approx(projected["cost_online"]["low"] / 2)
    assert measured["parse_status"]["partial"]["value"] == 0.25 and measured["repaired"]["value"] == 0.25
    assert measured["image_tokens_per_image"]["mean"] == pytest.approx(990)
    assert measured["spent"] == {"prompt_tokens": 4000, "completion_tokens": 2000,
                                 "cost_online": pytest.approx(sum(per_record))}
    json.dumps(found, allow_nan=False)


def test_failed_records_count_as_records_without_tokens():
    sample = rows([(1000, 500)] * 3) + [{**rows([(0, 0)])[0], "requests": 0, "asked": 0,
                                         "image_prompt_tokens": None}]
    failed = [{"kind": "rejected"}]
    found = estimate(sample, refined(3), failed, 400, PLAN)
    assert found["projected"]["prompt_tokens"]["value"] == pytest.approx(300_000)
    assert found["measured"]["failed_share"]["value"] == 0.25
    assert found["measured"]["failures_by_kind"] == {"rejected": 1}


def test_no_prices_no_cost():
    plan = {**PLAN, "prices": {"input_per_mtok": None, "output_per_mtok": None, "batch_discount": 0.5}}
    found = estimate(rows([(1000, 500)] * 3), refined(3), [], 100, plan)
    assert found["projected"]["cost_online"] is None and found["projected"]["cost_batch"] is None
    assert "not priced" in summary(found, "run", "samples.html")


def test_judge_hook_projects_judge_tokens():
    judge = [{"prompt_tokens": 2000, "completion_tokens": 100}] * 3
    found = estimate(rows([(1000, 500)] * 3), refined(3), [], 100, PLAN, judge=judge)
    assert found["measured"]["judge"]["records"] == 3
    assert found["projected"]["judge_prompt_tokens"]["value"] == pytest.approx(200_000)
    assert estimate(rows([(1000, 500)] * 3), refined(3), [], 100, PLAN)["measured"]["judge"] is None


def test_records_the_judge_skipped_count_as_records_without_judge_tokens():
    verified = [{"verify": {"status": "ok", "tokens": {"prompt": 3000, "completion": 90}}},
                {"verify": {"status": "skipped"}}]
    judge = judge_rows(verified)
    assert judge == [{"prompt_tokens": 3000, "completion_tokens": 90}]
    found = estimate(rows([(1000, 500)] * 2), refined(2), [], 100, PLAN, judge=judge)
    assert found["measured"]["judge"]["records"] == 1
    assert found["projected"]["judge_prompt_tokens"]["value"] == pytest.approx(150_000)
    assert found["projected"]["judge_cost_online"]["value"] == pytest.approx(100 * (1500 * 0.15 + 45 * 0.6) / 1e6)


def test_wall_time_spreads_latencies_over_the_requests_in_flight():
    assert in_flight(PLAN) == (4, 256)
    assert in_flight({**PLAN, "shards": 2}) == (2, 128)
    assert in_flight({**PLAN, "shard_size": 10}) == (4, 40)
    wall, note = wall_time(rows([(1, 1)] * 5, latency=2.0), 10_000, PLAN)
    assert wall["value"] == pytest.approx(10_000 * 2.0 / 256) and "256 in all" in note


def test_wall_time_of_several_steps_spreads_each_over_its_own_requests_in_flight():
    plan = {**PLAN, "shards": 1, "shard_size": 4, "max_concurrency": 8, "max_total_concurrency": 8}
    assert in_flight(plan) == (1, 4) and in_flight(plan, 40) == (1, 8) and in_flight(plan, 0.1) == (1, 1)
    many = [{**row, "requests": 41, "latency_s": 41.0,
             "phases": {"generate": {"requests": 1, "latency_s": 1.0}, "rotations": {"requests": 40, "latency_s": 40.0}}}
            for row in rows([(1, 1)] * 5)]
    wall, note = wall_time(many, 100, plan)
    assert wall["value"] == pytest.approx(100 * (1.0 / 4 + 40.0 / 8)), "a step of 4 requests, then one of 160"
    assert "generate: 4 in flight, rotations: 8 in flight" in note
    assert estimate(many, refined(5), [], 100, plan)["projected"]["requests"]["value"] == pytest.approx(4100)


def test_wall_time_respects_the_rate_limits():
    plan = {**PLAN, "requests_per_minute": 60}  # 1 request a second per job, 4 jobs
    wall, _ = wall_time(rows([(1, 1)] * 5, latency=0.1), 10_000, plan)
    assert wall["value"] == pytest.approx(10_000 / 4)
    plan = {**PLAN, "tokens_per_minute": 600}  # 10 tokens a second per job
    wall, _ = wall_time(rows([(5, 5)] * 5, latency=0.1), 1000, plan)
    assert wall["value"] == pytest.approx(1000 * 10 / 40)


def test_wall_time_is_not_projected_for_vllm():
    wall, note = wall_time(rows([(1, 1)] * 5), 100, {**PLAN, "backend": "vllm"})
    assert wall is None and "vllm" in note


# --- image tokens for the rate limiter --------------------------------------------------


def task(text: str = "x" * 400, images: int = 1, system: str | None = None) -> GenerationTask:
    return GenerationTask("r0", Prompt(system, (("user", text),), ("a.png",) * images), seed=0)


def test_image_tokens_start_from_the_guess_then_follow_the_answers():
    meter = ImageTokens()
    assert meter.mean == IMAGE_TOKEN_ESTIMATE
    assert meter.estimate(task(), 100) == 100 + IMAGE_TOKEN_ESTIMATE + 100
    meter.observe(task(images=2), 100 + 2 * 300)
    assert meter.mean == 300
    meter.observe(task(), 100 + 600)
    assert meter.mean == pytest.approx(400)
    meter.observe(task(images=0), 5000)  # no image: says nothing about images
    meter.observe(task(), None)
    meter.observe(task(), "lots")
    assert meter.mean == pytest.approx(400)


def test_a_measured_prior_weighs_as_the_images_it_measured():
    meter = ImageTokens(1000, weight=3)
    meter.observe(task(), 100 + 200)
    assert meter.mean == pytest.approx((3 * 1000 + 200) / 4)


def test_text_tokens():
    assert text_tokens(task("a" * 40, system="b" * 40)) == 20


def test_image_tokens_from_the_estimate(tmp_path):
    path = tmp_path / "estimate.json"
    assert image_tokens(path) is None
    path.write_text("{not json")
    assert image_tokens(path) is None
    path.write_text(json.dumps({"measured": {"image_tokens_per_image": {"mean": 255.5}, "images_measured": 20}}))
    assert image_tokens(path) == (255.5, 20)
    meter = image_token_meter(path)
    assert meter.mean == 255.5 and meter.images == 20
    assert image_token_meter(tmp_path / "none.json").mean == IMAGE_TOKEN_ESTIMATE


def test_the_api_backend_measures_image_tokens_as_it_goes(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    settings = settings_from_defaults(ApiSettings, "api", model="test-vlm", base_url=server.base_url,
                                      tokens_per_minute=10**9)
    backend = ApiBackend(settings, sampling(max_tokens=64), 1 << 20)
    image = str(sorted(DEMO_IMAGES.iterdir())[0])
    work = [GenerationTask(f"r{n}", Prompt(None, (("user", f"Describe rec-{n}."),), (image, image)), seed=n)
            for n in range(4)]
    outcomes = []
    backend.run(work, outcomes.append)
    assert all(o.ok for o in outcomes)
    assert backend.image_tokens.mean == pytest.approx(85, abs=1), "the test server counts 85 per image"
    assert backend.repairer(128, None).image_tokens is backend.image_tokens
