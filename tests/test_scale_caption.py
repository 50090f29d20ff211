"""ScaleCap's pure parts: sentences, yes/no verdicts, detail questions, the prompts of each step
and what a record's answers become (outputs, status, issues)."""

from __future__ import annotations

import pytest

from vqaflow.pipelines import PIPELINES, Answer
from vqaflow.pipelines.scale_caption import STEP_IMAGES, STEPS, read, step_texts
from vqaflow.pipelines.scalecap_text import (
    CAPTION_PROMPT,
    DETAIL_CHECK_PROMPT,
    SENTENCE_CHECK_PROMPT,
    detail_questions,
    fusion_prompt,
    questions_prompt,
    read_verdict,
    split_sentences,
)

CAPTION = "A man stands in a kitchen. A dragon flies above him. A red sign reads EXIT."
INSTRUCTIONS = "Describe more details about the man.\nDescribe more details about the sign."


def test_english_sentences_split_after_sentence_marks_but_not_abbreviations():
    text = ('A man stands near Mr. Smith. He holds a sign reading "OPEN." The board, e.g. a plank, is red! '
            "Is it wet?  It is 3.5 m tall, by J. K. Rowling. No end mark")
    assert split_sentences(text) == [
        "A man stands near Mr. Smith.", 'He holds a sign reading "OPEN."', "The board, e.g. a plank, is red!",
        "Is it wet?", "It is 3.5 m tall, by J. K. Rowling.", "No end mark"]


def test_chinese_sentences_split_without_spaces():
    assert split_sentences("图中有一只猫。猫坐在桌子上！桌子是什么颜色？（红色。）") == [
        "图中有一只猫。", "猫坐在桌子上！", "桌子是什么颜色？", "（红色。）"]


def test_lines_are_sentences_without_markers_and_headings():
    text = "## Objects\n- A red car.\n2. A blue bus\n**Scene:**\n**Text:** The sign says EXIT.\n\nDetails:"
    assert split_sentences(text) == ["A red car.", "A blue bus", "Text: The sign says EXIT."]


def test_reasoning_is_not_a_sentence():
    assert split_sentences("<think>Let me look. A cat?</think>A cat sleeps.") == ["A cat sleeps."]


@pytest.mark.parametrize("answer", ["Yes", "yes.", "**Yes**", "Answer: yes", "Yes, it is.", " YES\n", "是的。", "是"])
def test_clear_yes(answer):
    assert read_verdict(answer) == "yes"


@pytest.mark.parametrize("answer", ["No", "no.", "No, there is no dragon.", "Answer: No", "不是", "否。", "No, but close."])
def test_clear_no(answer):
    assert read_verdict(answer) == "no"


@pytest.mark.parametrize("answer", [
    "Yes, but the shirt is blue.", "Yes, partially.", "Yes or no", "Yes/No", "Maybe", "", "Yesterday it was",
    "The description is supported.", "Not-quite", "是否", "是的，但颜色不对。", "It might be. Yes."])
def test_anything_else_is_unclear(answer):
    assert read_verdict(answer) == "unclear"


def test_a_cut_off_verdict_is_unclear():
    assert read_verdict("Yes", "stop") == "yes"
    assert read_verdict("Yes", "length") == "unclear"


def test_detail_questions_are_objects_then_position_twins():
    answer = ("Instructions:\n1. Describe more details about the man.\n- **Describe more details about the suit.**\n"
              "Describe more details about the Man.\nDescribe more details about the St. Mary church.\n"
              "Describe more details about the position of the tie. Describe more details about the bed.")
    objects = ["the man", "the suit", "the St. Mary church", "the tie", "the bed"]
    assert detail_questions(answer, 20) == (
        [f"Describe more details about {o}." for o in objects]
        + [f"Describe more details about the position of {o}." for o in objects])
    assert detail_questions(answer, 2) == [
        "Describe more details about the man.", "Describe more details about the suit.",
        "Describe more details about the position of the man.", "Describe more details about the position of the suit."]


def test_an_unfinished_last_instruction_of_a_cut_answer_is_dropped():
    answer = "Describe more details about the man.\nDescribe more details about the ta"
    assert detail_questions(answer, 20, "length") == [
        "Describe more details about the man.", "Describe more details about the position of the man."]
    assert len(detail_questions(answer, 20)) == 4
    assert detail_questions("Describe more details about the man.", 20, "length") == [
        "Describe more details about the man.", "Describe more details about the position of the man."]


def test_no_instruction_no_questions():
    assert detail_questions("There is a man and a bed.", 20) == []


def test_the_text_prompts_carry_the_golden_sentences_and_split_details():
    golden = ["A man stands.", "A sign reads EXIT."]
    assert questions_prompt(golden).endswith("Sentence:\nA man stands.\nA sign reads EXIT.\nInstructions:")
    qas = [{"question": "Describe more details about the man.", "answer": "He wears blue."},
           {"question": "Describe more details about the position of the man.", "answer": "He is on the left."}]
    assert fusion_prompt(golden, qas).startswith(
        "Basic Context:\nA man stands.\nA sign reads EXIT.\n\nObject Information:\nHe wears blue.\n\n"
        "Position Information:\nHe is on the left.\n\nFollowing the logic")


def _answers(**steps: list[str]) -> dict[str, list[Answer]]:
    return {name: [Answer(text) for text in texts] for name, texts in steps.items()}


FULL = dict(caption=[CAPTION], sentence_checks=["Yes.", "No.", "yes"], questions=[INSTRUCTIONS],
            details=["He wears a blue apron.", "It is red with white letters.", "He is on the left.", "Above the door."],
            detail_checks=["Yes", "Yes", "No", "Yes"], fusion=["A man in a blue apron stands left; a red EXIT sign."])


def test_each_step_is_asked_from_the_answers_before_it():
    answers = _answers(**FULL)
    asked = {step: step_texts(step, answers, 20) for step in STEPS[1:]}
    assert asked["sentence_checks"][1] == SENTENCE_CHECK_PROMPT.format(text="A dragon flies above him.")
    assert "A dragon" not in asked["questions"][0] and "A red sign reads EXIT." in asked["questions"][0]
    assert asked["details"][3] == "Describe more details about the position of the sign."
    assert asked["detail_checks"][0] == DETAIL_CHECK_PROMPT.format(text="He wears a blue apron.")
    assert "He is on the left." not in asked["fusion"][0] and "Above the door." in asked["fusion"][0]
    assert [STEP_IMAGES[step] for step in STEPS] == [True, True, False, True, True, False]


def test_the_pipeline_declares_its_steps_fields_and_pairs():
    pipeline = PIPELINES["scale_caption"]
    assert [step.name for step in pipeline.steps] == list(STEPS)
    assert [step.images for step in pipeline.steps] == [STEP_IMAGES[step] for step in STEPS]
    assert (pipeline.prompt, pipeline.steps[0].single, pipeline.pairs, pipeline.repairs) == (
        CAPTION_PROMPT, True, True, False)
    assert pipeline.fields == ("init_caption", "sentences", "golden_sentences", "questions", "details",
                               "final_caption")


def test_a_record_whose_every_step_answered_clearly_is_ok():
    done = read(_answers(**FULL), 20)
    assert done.fields["init_caption"] == CAPTION
    assert done.fields["golden_sentences"] == ["A man stands in a kitchen.", "A red sign reads EXIT."]
    assert done.fields["sentences"][1] == {"text": "A dragon flies above him.", "verdict": "no"}
    assert done.fields["questions"][1] == "Describe more details about the sign."
    assert [d["verdict"] for d in done.fields["details"]] == ["yes", "yes", "no", "yes"]
    assert done.qas == [
        {"question": "Describe more details about the man.", "answer": "He wears a blue apron."},
        {"question": "Describe more details about the sign.", "answer": "It is red with white letters."},
        {"question": "Describe more details about the position of the sign.", "answer": "Above the door."}]
    assert done.fields["final_caption"] == FULL["fusion"][0]
    assert (done.status, done.issues, done.truncated) == ("ok", (), False)


def test_an_unclear_verdict_drops_its_sentence_and_is_recorded():
    done = read(_answers(**{**FULL, "sentence_checks": ["Yes", "No", "Yes, but it is orange."]}), 20)
    assert done.fields["golden_sentences"] == ["A man stands in a kitchen."]
    assert done.fields["sentences"][2]["verdict"] == "unclear"
    assert (done.status, done.issues) == ("partial", ("unclear_verdict",))


def test_a_cut_caption_loses_its_unfinished_sentence():
    answers = {"caption": Answer("A man stands in a kitchen. A dragon fl", "length")}  # a one-request step's result
    assert step_texts("sentence_checks", answers, 20) == [
        SENTENCE_CHECK_PROMPT.format(text="A man stands in a kitchen.")]


def test_empty_and_cut_details_are_not_checked():
    answers = _answers(**{**FULL, "details": ["He wears a blue apron.", "", "He is on the left.", "Above"]})
    answers["details"][3] = Answer("Above", "length")
    assert step_texts("detail_checks", answers, 20) == [
        DETAIL_CHECK_PROMPT.format(text=t) for t in ("He wears a blue apron.", "He is on the left.")]
    done = read({**answers, "detail_checks": [Answer("Yes"), Answer("Yes")], "fusion": [Answer("Fused.")]}, 20)
    assert [d["verdict"] for d in done.fields["details"]] == ["yes", "unchecked", "yes", "unchecked"]
    assert (done.status, done.issues, done.truncated) == (
        "partial", ("truncated", "empty_answer"), True)


def test_no_supported_sentence_stops_the_record():
    answers = _answers(caption=[CAPTION], sentence_checks=["No", "No", "Maybe"])
    assert step_texts("questions", answers, 20) == []
    done = read(answers, 20)
    assert (done.fields["golden_sentences"], done.fields["final_caption"], done.qas) == ([], "", [])
    assert (done.status, done.issues) == ("none", ("unclear_verdict", "no_golden_sentences"))


def test_no_questions_still_fuses_the_golden_sentences():
    answers = _answers(caption=[CAPTION], sentence_checks=["Yes", "No", "Yes"], questions=["None."])
    assert step_texts("details", answers, 20) == step_texts("detail_checks", answers, 20) == []
    assert "Object Information:\n\n" in step_texts("fusion", answers, 20)[0]
    done = read({**answers, "fusion": [Answer("A man stands under an EXIT sign.")]}, 20)
    assert (done.status, done.issues) == ("partial", ("no_questions", "no_pairs"))


def test_an_empty_caption_and_a_cut_final_caption():
    done = read(_answers(caption=["<think>hm</think>  "]), 20)
    assert (done.status, done.issues) == ("none", ("empty_caption",))
    answers = _answers(**FULL)
    answers["fusion"] = [Answer("A man in a blue", "length")]
    done = read(answers, 20)
    assert done.fields["final_caption"] == "A man in a blue"
    assert (done.status, done.issues, done.truncated) == ("partial", ("truncated",), True)


def test_the_fused_caption_passes_the_plain_text_checks():
    done = read(_answers(**{**FULL, "fusion": ["Sure! Here is the description: **A man** stands left."]}), 20)
    assert (done.status, done.issues) == ("partial", ("chatter", "markup_in_text"))


def test_answers_that_do_not_match_the_requests_are_an_error():
    with pytest.raises(ValueError, match="sentence_checks: 2 answers to 3 requests"):
        read(_answers(caption=[CAPTION], sentence_checks=["Yes", "Yes"]), 20)
