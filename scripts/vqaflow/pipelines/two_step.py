"""``image_vqa_two_step``: DataFlow-MM's current ``image_vqa`` (PR #71): the model writes one
question about the image ("only output the question content"), then a second request answers
that question with the image. Outputs ``question`` and ``answer``, and the pair as the record's
``qas``, so the rule filters, the judge and the exports treat it like any pair.

Both are read as plain text (chat-template tokens and reasoning removed, stripped); the second
request carries the question so read. The status is what the code checked: ``ok`` when neither
request was cut off, the question is one line, is a question and holds no label, and the pair
passes the pair checks every pipeline shares (:func:`vqaflow.quality.parse.check_pairs`); ``none``
when the question or the answer is empty (``no_question``, ``no_answer``); else ``partial``
(``truncated``, ``joined_lines``: the question runs on to more lines, ``chatter``, and the pair
checks' codes). A cut-off answer is asked again with more tokens by the repair.
"""

from __future__ import annotations

from ..quality.parse import Parse, check_pairs, plain_issues, read_plain
from .base import ONE, Answer, Outputs, Pipeline, Step, StepInput
from .pairs import ASSISTANT_SYSTEM_PROMPT

QUESTION_SYSTEM_PROMPT = (
    "You are a image question generator. Your task is to generate a question for the given image content."
)
QUESTION_PROMPT = (
    "Write one question about the content of this image that can be answered from the image alone. "
    "Only output the question content."
)


def _plain(inp: StepInput, answers: dict[str, Answer]) -> Answer:
    """The question as the second request quotes it: the answer read as plain text."""
    answer = answers[ONE]
    return Answer(read_plain(answer.text), answer.finish_reason)


def read_pair(inp: StepInput) -> Parse:
    """The record's ``question`` and ``answer``, the pair, and what the checks found."""
    question, answer = inp.results["question"], inp.results["answer"]
    text = read_plain(answer.text)
    issues = ["truncated"] if question.cut_off or answer.cut_off else []
    if not question.text:
        issues.append("no_question")
    elif len([line for line in question.text.splitlines() if line.strip()]) > 1:
        issues.append("joined_lines")
    if not text:
        issues.append("no_answer")
    issues += [issue for issue in plain_issues(question.text) + plain_issues(text) if issue == "chatter"]
    qas = check_pairs([{"question": question.text, "answer": text}], issues) if question.text and text else []
    return Outputs({"question": question.text, "answer": text}, qas, issues,
                   question.cut_off or answer.cut_off).parse(usable=bool(qas))


IMAGE_VQA_TWO_STEP = Pipeline(
    "image_vqa_two_step",
    (Step("question", QUESTION_SYSTEM_PROMPT, QUESTION_PROMPT, images=True, schema=None, collect=_plain),
     Step("answer", ASSISTANT_SYSTEM_PROMPT, "{question}", images=True, schema=None)),
    fields=("question", "answer"), reader=read_pair,
    about="one question about the image, then its answer (two requests)",
)
