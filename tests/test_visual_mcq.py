"""visual_mcq on the steps core against the test server: MCQs generated, each asked in rotations
with the image and text-only, kept or dropped, every request once; and its training turns."""

from __future__ import annotations

import re
from dataclasses import asdict

import pytest

from chat_server import MCQ_ANSWERING, ChatServer
from vqaflow.backends._factory import build_backend
from vqaflow.config_check import PIPELINE_SECTIONS, PIPELINE_SIDE_FIELDS
from vqaflow.jsonl import read_jsonl, write_jsonl
from vqaflow.pipelines import PIPELINES
from vqaflow.pipelines.mcq import training_turns
from vqaflow.settings import prompt_settings
from vqaflow.stages.generate import generate_shard
from vqaflow.stages.repair import RepairSettings
from workflow_helpers import DEMO_IMAGES, api_settings_for, sampling, schema_defaults

NO_REPAIR = RepairSettings(enabled=False, max_tokens_factor=2, structured_output=False)


def _shard(tmp_path, count: int) -> None:
    image = str(sorted(DEMO_IMAGES.iterdir())[0])
    write_jsonl(tmp_path / "shard.jsonl", [
        {"id": f"r{n}", "index": n, "record": {"id": f"r{n}", "image": [image], "conversation": [
            {"from": "human", "value": f"<image>\nGenerate 5 MCQs based on the image (rec-{n})."}]}}
        for n in range(count)])


def _generate(tmp_path, server, structured=False, **mcq) -> dict:
    settings = prompt_settings({**schema_defaults(), "pipeline": "visual_mcq", "structured_output": structured,
                                "mcq": {**schema_defaults()["mcq"], **mcq}})
    backend = build_backend("api", sampling(max_tokens=512), settings.max_pixels,
                            api=asdict(api_settings_for(server.base_url, max_retries=0)))
    return generate_shard(tmp_path / "shard.jsonl", tmp_path / "generated.jsonl", tmp_path / "failed.jsonl",
                          tmp_path / "journal.jsonl", settings, backend, NO_REPAIR)


def _rotations(seen: list[dict]) -> list[tuple[int, int]]:
    """(options, images) of each rotation request the server saw."""
    return [(len(re.findall(r"^   - [A-H]\) ", entry["text"], re.M)), entry["images"])
            for entry in seen if MCQ_ANSWERING in entry["text"]]


@pytest.mark.parametrize("structured", [False, True])
def test_mcqs_kept_when_they_need_the_image(tmp_path, monkeypatch, structured):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    _shard(tmp_path, 2)
    with ChatServer() as server:
        assert _generate(tmp_path, server, structured)["failed"] == 0
        seen = list(server.stats["seen"])
        assert len(seen) == 2 * (1 + 2 * 5 * 4)
        assert sorted(_rotations(seen)) == [(4, 0)] * 40 + [(5, 1)] * 40, "blind: four options, no image"
        assert {entry["images"] for entry in seen if "multiple-choice questions" in entry["text"]} == {1}
        for line in read_jsonl(tmp_path / "generated.jsonl"):
            tag = f"rec-{line['id'][1:]}"
            parsed = line["parsed"]
            assert (parsed["status"], parsed["issues"]) == ("ok", [])
            kept, dropped = parsed["fields"]["mcq"], parsed["fields"]["mcq_dropped"]
            assert [mcq["question"] for mcq in kept] == [f"Which fact belongs to {tag} (question {k})?"
                                                         for k in (2, 3, 4, 5)]
            for mcq in kept:
                assert mcq["options"][mcq["answer"]].startswith(f"{tag} fact ")
                assert (mcq["visual_accuracy"], mcq["blind_accuracy"]) == (1.0, 0.0)
                assert sorted(mcq["options"]) == ["A", "B", "C", "D"]
            assert [(mcq["answer"], mcq["blind_accuracy"], mcq["reasons"]) for mcq in dropped] == [
                ("A", 1.0, ["right_without_image"])]
            assert line["generation"]["paid"]["requests"] == 41
        before = server.stats["requests"]
        _generate(tmp_path, server, structured)
        assert server.stats["requests"] == before, "a rerun asks nothing"


def test_a_failed_rotation_fails_its_record_and_is_asked_again_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    _shard(tmp_path, 2)
    broken = "Which fact belongs to rec-1 (question 3)?\n   - A) rec-1 guess 3.2"
    with ChatServer(faults={"500": 1.0}, fault_match=broken) as server:
        assert _generate(tmp_path, server)["failed"] == 1
        [failure] = read_jsonl(tmp_path / "failed.jsonl")
        assert failure["id"] == "r1" and failure["transient"]
        assert re.match(r"request q2\.r\d\.(visual|blind) of step rotations:", failure["error"])
        asked = len(server.stats["seen"])
        server.faults["500"] = 0.0
        assert _generate(tmp_path, server)["failed"] == 0
        again = server.stats["seen"][asked:]
        assert len(again) >= 1 and all(broken in entry["text"] for entry in again), "only the failed requests"


def test_rotations_follow_the_settings_and_the_prompt_the_count(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    _shard(tmp_path, 1)
    with ChatServer() as server:
        _generate(tmp_path, server, questions=3, rotations=2, max_blind=1.0)
        seen = server.stats["seen"]
        assert "generate three multiple-choice questions" in seen[0]["text"]
        assert sorted(_rotations(seen)) == [(4, 0)] * 6 + [(5, 1)] * 6, "3 of the 5 MCQs, 2 rotations each"
        [line] = read_jsonl(tmp_path / "generated.jsonl")
        assert line["parsed"]["issues"] == ["extra_mcqs"] and len(line["parsed"]["fields"]["mcq"]) == 3


def test_no_mcq_kept_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    _shard(tmp_path, 1)
    with ChatServer() as server:
        _generate(tmp_path, server, questions=1)  # the server's question 1 is answered right without the image
        [line] = read_jsonl(tmp_path / "generated.jsonl")
        assert (line["parsed"]["status"], line["parsed"]["issues"]) == ("none", ["extra_mcqs", "no_mcq_kept"])
        assert line["parsed"]["fields"]["mcq"] == [] and len(line["parsed"]["fields"]["mcq_dropped"]) == 1


def test_training_turns_are_llava_multiple_choice():
    mcq = {"question": "What color is the car?", "options": {"A": "Red", "B": "Blue", "C": "Green", "D": "Yellow"},
           "answer": "B", "visual_accuracy": 1.0, "blind_accuracy": 0.0}
    assert training_turns({"mcq": [mcq]}) == [{
        "question": "What color is the car?\nA. Red\nB. Blue\nC. Green\nD. Yellow\n"
                    "Answer with the option's letter from the given choices directly.",
        "answer": "B"}]
    assert training_turns({"mcq": None}) == []


def test_the_planner_knows_each_pipelines_section_and_side_fields():
    """The Snakefile cannot import the pipelines: config_check's tables must agree with them."""
    assert {name: p.side for name, p in PIPELINES.items() if p.side} == PIPELINE_SIDE_FIELDS
    assert set(PIPELINE_SECTIONS) <= set(PIPELINES)
    assert set(PIPELINE_SECTIONS.values()) <= set(schema_defaults())
