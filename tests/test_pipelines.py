"""A pipeline is a sequence of request steps: a later step is asked with the earlier steps'
results, only for the records whose previous step answered, one request per record or several
(text-only ones too); a record fails alone, a rerun asks only what is missing, then nothing."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from chat_server import OVERFLOW, ChatServer
from vqaflow.backends._factory import build_backend
from vqaflow.jsonl import read_jsonl, write_jsonl
from vqaflow.pipelines import ONE, PIPELINES, Answer, Ask, Outputs, Pipeline, Step, StepError, StepInput, qa_schema
from vqaflow.requests import fingerprint
from vqaflow.settings import prompt_settings
from vqaflow.stages.generate import generate_shard, prepare
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
    for pipeline in (PIPELINES[name] for name in ("context_vqa", "image_vqa", "image_qa")):
        (step,) = pipeline.steps
        assert step.images and step.schema == qa_schema(pipeline.want_article)
        assert (pipeline.prompt, pipeline.system_prompt) == (step.prompt, step.system_prompt)


# the first request of each seed pipeline for one demo image, as every version before the
# pipelines as steps fingerprinted and seeded it: their journals stay valid
SEED_FINGERPRINTS = {"context_vqa": ("698e4eeab07e42a7bd1e4b11679adfad", 305843559),
                     "image_vqa": ("2e84f124eec968312635d0a3038222e8", 3510306749),
                     "image_qa": ("922aad5cfcc890b1bfa1854ace438747", 1995171540)}


@pytest.mark.parametrize("name", sorted(SEED_FINGERPRINTS))
def test_the_seed_pipelines_fingerprint_their_requests_as_before(name):
    image = str(sorted(DEMO_IMAGES.iterdir())[0])
    settings = prompt_settings({**schema_defaults(), "pipeline": name})
    task, digests = prepare({"id": "r0", "index": 0, "record": {"id": "r0", "image": [image]}}, settings)
    assert (fingerprint({"model": "m"}, task, digests, settings.max_pixels), task.seed) == SEED_FINGERPRINTS[name]


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


def _probes(inp: StepInput) -> dict[str, Ask]:
    description = inp.results["describe"].text
    if "rec-3" in description:
        raise StepError("nothing to probe in rec-3")
    return {"seen": Ask(f"[[seen]] With the picture: {description}"),
            "blind": Ask(f"[[blind]] Without the picture: {description}", images=False)}


DESCRIBE_THEN_PROBE = Pipeline(
    "describe_then_probe",
    (Step("describe", "You describe images.", "Describe this image.", images=True, schema=None),
     Step("probe", "You answer.", "", images=True, schema=None, asks=_probes,
          collect=lambda inp, answers: {sub: "A: 0" in answer.text for sub, answer in answers.items()})),
    fields=("description", "probe"), pairs=False,
    reader=lambda inp: Outputs(fields={"description": inp.results["describe"].text,
                                       "probe": inp.results["probe"]}).parse(usable=True),
    training=lambda fields: [{"question": "Describe the image.", "answer": fields["description"]}],
)


def test_a_fan_out_step_asks_each_request_once_fails_records_alone_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    image = str(sorted(DEMO_IMAGES.iterdir())[0])
    write_jsonl(tmp_path / "shard.jsonl", [
        {"id": f"r{n}", "index": n, "record": {"id": f"r{n}", "image": [image],
                                               "conversation": [{"from": "human", "value": f"Describe rec-{n}."}]}}
        for n in range(4)])
    settings = replace(prompt_settings({**schema_defaults(), "pipeline": "image_vqa"}), pipeline=DESCRIBE_THEN_PROBE)
    broken = "[[blind]] Without the picture: Q: How many images does rec-1 have?"
    with ChatServer(faults={"500": 1.0}, fault_match=broken) as server:
        def generate() -> dict:
            backend = build_backend("api", sampling(max_tokens=256), settings.max_pixels,
                                    api=asdict(api_settings_for(server.base_url, max_retries=0)))
            return generate_shard(tmp_path / "shard.jsonl", tmp_path / "generated.jsonl", tmp_path / "failed.jsonl",
                                  tmp_path / "journal.jsonl", settings, backend, NO_REPAIR)

        assert generate()["failed"] == 2
        seen = list(server.stats["seen"])
        assert len(seen) == 4 + 3 * 2, "4 descriptions, then 2 probes for each record but rec-3"
        assert {entry["images"] for entry in seen if "[[blind]]" in entry["text"]} == {0}, "blind: text only"
        assert {entry["images"] for entry in seen if "[[seen]]" in entry["text"]} == {1}
        failed = {f["id"]: f for f in read_jsonl(tmp_path / "failed.jsonl")}
        assert failed["r1"]["transient"] and failed["r1"]["error"].startswith("request blind of step probe:")
        assert failed["r3"]["kind"] == "prompt" and not failed["r3"]["transient"]
        assert "nothing to probe in rec-3" in failed["r3"]["error"]
        generated = {line["id"]: line for line in read_jsonl(tmp_path / "generated.jsonl")}
        assert sorted(generated) == ["r0", "r2"]
        for line in generated.values():
            assert line["parsed"]["fields"]["probe"] == {"seen": False, "blind": True}
            assert line["parsed"]["status"] == "ok" and line["parsed"]["qas"] == []
            assert line["answer"] == line["parsed"]["fields"]["description"], "the answer step: describe"
            assert set(line["steps"]["probe"]) == {"seen", "blind"}
            assert line["generation"]["paid"]["requests"] == 3
        journal = list(read_jsonl(tmp_path / "journal.jsonl"))
        assert {entry["id"] for entry in journal} == {"r0", "r1", "r2", "r3"}, "filed under the record ids"
        assert sum(entry["id"] == "r1" for entry in journal) == 2, "rec-1's description and its seen probe"

        server.faults["500"] = 0.0
        assert generate()["failed"] == 1
        asked = server.stats["seen"][len(seen):]
        assert [entry["text"].startswith("You answer.\n" + broken) for entry in asked] == [True], "only the failed one"
        assert {line["id"]: line for line in read_jsonl(tmp_path / "generated.jsonl")}["r1"]["parsed"]["fields"]["probe"]["blind"]
        before = server.stats["requests"]
        generate()
        assert server.stats["requests"] == before, "a rerun asks nothing"


def _read(pipeline: str, **answers: Answer):
    return PIPELINES[pipeline].read(StepInput("r0", answers, {}))


def test_a_caption_is_ok_only_when_checked():
    ok = _read("image_caption", caption=Answer("<think>a dog?</think>\nA brown dog on a red sofa.\n", "stop"))
    assert (ok.status, ok.fields, ok.qas, ok.issues) == ("ok", {"caption": "A brown dog on a red sofa."}, [], ())
    cut = _read("image_caption", caption=Answer("A brown dog on a red", "length"))
    assert (cut.status, cut.issues, cut.truncated) == ("partial", ("truncated",), True)
    assert _read("image_caption", caption=Answer("Sure! Here is a caption: a dog.")).issues == ("chatter",)
    assert _read("image_caption", caption=Answer("**A dog** on a sofa.")).issues == ("markup_in_text",)
    assert "refusal" in _read("image_caption", caption=Answer("I'm sorry, I cannot see the image.")).issues
    empty = _read("image_caption", caption=Answer("<think>hm</think>"))
    assert (empty.status, empty.issues, empty.fields) == ("none", ("no_caption",), {"caption": ""})
    assert PIPELINES["image_caption"].training({"caption": "A dog."}) == [
        {"question": "Describe the image.", "answer": "A dog."}]


def test_a_two_step_pair_is_ok_only_when_checked():
    pair = {"question": "What colour is the sofa?", "answer": "Red."}
    ok = _read("image_vqa_two_step", question=Answer(pair["question"]), answer=Answer("Red.", "stop"))
    assert (ok.status, ok.fields, ok.qas, ok.issues) == ("ok", pair, [pair], ())
    cut = _read("image_vqa_two_step", question=Answer(pair["question"]), answer=Answer("The sofa is", "length"))
    assert (cut.status, cut.issues, cut.truncated) == ("partial", ("truncated",), True)
    two = _read("image_vqa_two_step", question=Answer("What colour is the sofa?\nIt tests colour."), answer=Answer("Red."))
    assert two.issues == ("joined_lines",)
    statement = _read("image_vqa_two_step", question=Answer("The sofa is red."), answer=Answer("Yes."))
    assert (statement.status, statement.issues) == ("partial", ("not_a_question",))
    none = _read("image_vqa_two_step", question=Answer(""), answer=Answer("Red."))
    assert (none.status, none.qas, none.issues) == ("none", [], ("no_question",))


def test_the_second_step_quotes_the_question_as_read():
    step = PIPELINES["image_vqa_two_step"].steps[1]
    question = PIPELINES["image_vqa_two_step"].steps[0].result(
        StepInput("r0", {}, {}), {ONE: Answer("<think>hm</think> What is on the sofa? ")})
    assert step.requests(StepInput("r0", {"question": question}, {})) == {ONE: Ask("What is on the sofa?", True)}
