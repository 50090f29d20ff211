"""A pipeline is a sequence of request steps: a later step is asked with the earlier steps'
answers, only for the records whose previous step answered, and a rerun asks nothing."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from chat_server import OVERFLOW
from vqaflow.backends._factory import build_backend
from vqaflow.jsonl import read_jsonl, write_jsonl
from vqaflow.pipelines import PIPELINES, Pipeline, Step, qa_schema
from vqaflow.settings import prompt_settings
from vqaflow.stages.generate import generate_shard
from vqaflow.stages.repair import RepairSettings
from workflow_helpers import DEMO_IMAGES, api_settings_for, sampling, schema_defaults

DESCRIBE_THEN_ASK = Pipeline("describe_then_ask", (
    Step("describe", "You describe images.", "Describe this image.", images=True, schema=None),
    Step("ask", "You write quizzes.", "Write question answer pairs about this description:\n{describe}",
         images=False, schema=qa_schema(False)),
), want_article=False)
NO_REPAIR = RepairSettings(enabled=False, max_tokens_factor=2, structured_output=False)


class Recording:
    """A backend passing everything through, keeping the tasks it was asked."""

    def __init__(self, inner, tasks: list | None = None):
        self.inner, self.sampling, self.tasks = inner, inner.sampling, [] if tasks is None else tasks
        self.schema_check = inner.schema_check

    def identity(self) -> dict:
        return self.inner.identity()

    def run(self, tasks, on_outcome, on_retry=None) -> None:
        self.tasks.extend(tasks)
        self.inner.run(tasks, on_outcome, on_retry)

    def repairer(self, max_tokens, json_schema):
        return Recording(self.inner.repairer(max_tokens, json_schema), self.tasks)

    def free_text(self):
        return Recording(self.inner.free_text(), self.tasks)


def test_one_step_pipelines_ask_as_before():
    for pipeline in PIPELINES.values():
        (step,) = pipeline.steps
        assert step.images and step.schema == qa_schema(pipeline.want_article)
        assert (pipeline.prompt, pipeline.system_prompt) == (step.prompt, step.system_prompt)


@pytest.mark.parametrize("structured", [False, "auto"])
def test_a_second_step_carries_the_first_answer_and_a_rerun_asks_nothing(server, tmp_path, monkeypatch, structured):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    image = str(sorted(DEMO_IMAGES.iterdir())[0])
    texts = ["Describe rec-0.", "Describe rec-1.", f"Describe rec-2. {OVERFLOW}"]
    write_jsonl(tmp_path / "shard.jsonl", [
        {"id": f"r{n}", "index": n, "record": {"id": f"r{n}", "image": [image],
                                               "conversation": [{"from": "human", "value": text}]}}
        for n, text in enumerate(texts)])
    settings = replace(prompt_settings({**schema_defaults(), "pipeline": "image_vqa"}), pipeline=DESCRIBE_THEN_ASK,
                       structured_output=structured)

    def generate() -> Recording:
        backend = Recording(build_backend("api", sampling(max_tokens=256), settings.max_pixels,
                                          api=asdict(api_settings_for(server.base_url))))
        generate_shard(tmp_path / "shard.jsonl", tmp_path / "generated.jsonl", tmp_path / "failed.jsonl",
                       tmp_path / "journal.jsonl", settings, backend, NO_REPAIR)
        return backend

    backend = generate()
    first = [task for task in backend.tasks if task.prompt.images]
    second = [task for task in backend.tasks if not task.prompt.images]
    assert sorted(task.id for task in first) == ["r0", "r1", "r2"]
    assert sorted(task.id for task in second) == ["r0", "r1"], "no second step after a failed first one"
    generated = {line["id"]: line for line in read_jsonl(tmp_path / "generated.jsonl")}
    for task in second:
        line = generated[task.id]
        assert task.prompt.system == "You write quizzes."
        assert task.prompt.turns == (("user", "Write question answer pairs about this description:\n"
                                      + line["steps"]["describe"]),)
        assert f"How many images does rec-{task.id[1]} have?" in line["steps"]["describe"]
        if structured:  # the second step asked with its schema (the first has none: free text)
            assert json.loads(line["answer"])["qas"][0]["answer"] == "0", "the second step sent no image"
        else:
            assert "have?\nA: 0\n" in line["answer"], "the second step sent no image"
        assert line["generation"]["paid"]["requests"] == 2
    assert [f["id"] for f in read_jsonl(tmp_path / "failed.jsonl")] == ["r2"]
    assert server.stats["response_format"] == ({"none": 3, "json_schema": 2} if structured else {"none": 5})

    asked = server.stats["requests"]
    again = generate()
    assert again.tasks == [] and server.stats["requests"] == asked, "a rerun asks nothing"
    assert {line["id"]: line for line in read_jsonl(tmp_path / "generated.jsonl")} == generated
