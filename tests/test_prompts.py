import pytest

from vqaflow.columns import Columns
from vqaflow.pipelines import IMAGE_QA_SYSTEM_PROMPT, PIPELINES, SKVQA_PROMPT
from vqaflow.prompts import PromptError, PromptSettings
from vqaflow.prompts import build_prompt as build

COLUMNS = Columns("id", "image", "conversation", "vqa", "context_vqa", "qas")


def build_prompt(record, record_id, pipeline, system_prompt=None, prompt=None):
    settings = PromptSettings(PIPELINES[pipeline], COLUMNS, system_prompt, prompt, ".", 1 << 20, 0, True)
    return build(record, record_id, settings)


def test_dataflow_mm_record():
    record = {"image": ["./a.png"], "conversation": [{"from": "human", "value": "<image>\nDescribe."}]}
    prompt = build_prompt(record, "r0", "context_vqa")
    assert prompt.turns == (("user", "Describe."),)
    assert prompt.images == ("./a.png",)
    assert prompt.system == "You are a helpful assistant."


def test_role_content_turns_and_system_turn():
    record = {
        "image": "b.png",
        "conversation": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "What?"},
            {"role": "assistant", "content": "This."},
            {"role": "user", "content": "And?"},
        ],
    }
    prompt = build_prompt(record, "r0", "image_vqa", system_prompt="ignored")
    assert prompt.system == "Be terse."
    assert prompt.turns == (("user", "What?"), ("assistant", "This."), ("user", "And?"))
    assert prompt.images == ("b.png",)


def test_defaults_when_no_conversation():
    prompt = build_prompt({"image": "a.png"}, "r0", "context_vqa")
    assert prompt.turns == (("user", SKVQA_PROMPT),)
    assert SKVQA_PROMPT.startswith("Write a Wikipedia article related to this image")
    assert "8: The answer should not contain 'and', 'or'" in SKVQA_PROMPT
    qa = build_prompt({"image": "a.png"}, "r0", "image_qa")
    assert qa.system == IMAGE_QA_SYSTEM_PROMPT
    assert qa.turns == (("user", PIPELINES["image_qa"].prompt),)


def test_config_overrides():
    prompt = build_prompt({}, "r0", "image_vqa", system_prompt="S", prompt="P")
    assert (prompt.system, prompt.turns, prompt.images) == ("S", (("user", "P"),), ())


def test_bad_turn_names_the_record():
    with pytest.raises(PromptError, match="record 'r9': conversation turn 0"):
        build_prompt({"conversation": [{"speaker": "x"}]}, "r9", "image_qa")


def test_image_only_turn_gets_the_default_prompt():
    record = {"image": "a.png", "conversation": [{"from": "human", "value": "<image>\n"}]}
    assert build_prompt(record, "r0", "image_vqa").turns == (("user", PIPELINES["image_vqa"].prompt),)
    assert build_prompt(record, "r0", "image_vqa", prompt="P").turns == (("user", "P"),)
