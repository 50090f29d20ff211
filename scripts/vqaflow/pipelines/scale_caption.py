"""``scale_caption``: ScaleCap dense captions (DataFlow-MM's ``image_scale_caption_api_pipeline``).

Six steps (:data:`STEPS`), every prompt from :mod:`.scalecap_text`: ``caption`` (one request with
the image) -> ``sentence_checks`` (one yes/no request per sentence of the caption, with the image)
-> ``questions`` (one text-only request naming the golden sentences' objects) -> ``details`` (each
detail question, with the image) -> ``detail_checks`` (a yes/no request per detail answer, with the
image) -> ``fusion`` (one text-only request fusing the golden sentences and the kept details). A
fan-out step's result is its answers in request order; a record stops asking where nothing is
left to ask (no supported sentence). Outputs: :data:`FIELDS`, and the detail pairs that passed
their check as the record's pairs (``qas``), which the quality layer and the exports read like any.

"ok means right": a yes/no answer counts as yes only when it clearly is
(:func:`.scalecap_text.read_verdict`); anything else is not supported and recorded as ``unclear``.
Issue codes, besides the pair checks every pipeline shares (:func:`..quality.parse.check_pairs`):

- ``truncated``: an answer was cut off at ``max_tokens``: a caption's unfinished last sentence and
  a question step's unfinished last instruction are dropped, a cut check counts as ``unclear``,
  a cut detail is not checked, a cut final caption is kept.
- ``empty_caption`` / ``empty_final_caption``: the caption or the fused caption is empty.
- ``chatter``, ``markup_in_text``, ``refusal``: the fused caption's plain-text checks
  (:func:`..quality.parse.plain_issues`, as ``image_caption``'s caption).
- ``unclear_verdict``: a yes/no answer neither clearly yes nor clearly no.
- ``no_golden_sentences``: no sentence of the caption was supported (nothing more is asked).
- ``no_questions``: the question step named no object.
- ``empty_answer``: a detail question got an empty answer (not checked).
- ``no_pairs``: no detail answer passed its check.

Status: ``ok`` without issues, ``none`` with neither a final caption nor a kept pair, else ``partial``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..quality.parse import Parse, check_pairs, plain_issues, read_plain
from .base import Answer, Ask, Outputs, Pipeline, Step, StepInput
from .scalecap_text import (
    CAPTION_PROMPT,
    DETAIL_CHECK_PROMPT,
    SENTENCE_CHECK_PROMPT,
    SYSTEM_PROMPT,
    detail_questions,
    finished,
    fusion_prompt,
    questions_prompt,
    read_verdict,
    split_sentences,
)

STEPS = ("caption", "sentence_checks", "questions", "details", "detail_checks", "fusion")
STEP_IMAGES = {"caption": True, "sentence_checks": True, "questions": False, "details": True,
               "detail_checks": True, "fusion": False}  # whether the record's images go with the step
FIELDS = ("init_caption", "sentences", "golden_sentences", "questions", "details", "final_caption")


@dataclass
class _Record:
    """What a record's answers so far give (each step's part filled once its answers are in)."""

    issues: list[str] = field(default_factory=list)
    caption: str = ""
    sentences: list[str] | None = None
    verdicts: list[str] | None = None
    questions: list[str] | None = None
    answers: list[str] | None = None  # the detail answers, aligned with ``questions``
    checked: list[int] | None = None  # the indices of the answers asked to check
    detail_verdicts: list[str] | None = None  # aligned with ``checked``

    @property
    def golden(self) -> list[str]:
        """The sentences checked yes."""
        return [s for s, v in zip(self.sentences or [], self.verdicts or []) if v == "yes"]

    def kept(self) -> list[dict]:
        """The detail pairs checked yes."""
        return [{"question": self.questions[i], "answer": self.answers[i]}
                for i, v in zip(self.checked or [], self.detail_verdicts or []) if v == "yes"]


def _answers(results: Mapping[str, Any], step: str, asked: int) -> list[Answer] | None:
    """A step's answers in request order (none for a step of no requests), or None while the
    step has no result (raises when their count is not what the step asked)."""
    if step not in results:
        return None if asked else []
    found = results[step]
    found = [found] if isinstance(found, Answer) else list(found)
    if len(found) != asked:
        raise ValueError(f"{step}: {len(found)} answers to {asked} requests")
    return found


def _read_caption(record: _Record, caption: Answer) -> None:
    record.caption = read_plain(caption.text)
    if caption.cut_off:
        record.issues.append("truncated")
    if not record.caption:
        record.issues.append("empty_caption")
    sentences = split_sentences(record.caption)
    if caption.cut_off and sentences and not finished(sentences[-1]):
        sentences = sentences[:-1]
    record.sentences = sentences


def _read_checks(answers: list[Answer], issues: list[str]) -> list[str]:
    """The verdicts of a check step's answers (issues added)."""
    verdicts = [read_verdict(answer.text, answer.finish_reason) for answer in answers]
    if any(answer.cut_off for answer in answers):
        issues.append("truncated")
    if "unclear" in verdicts:
        issues.append("unclear_verdict")
    return verdicts


def _read_details(record: _Record, answers: list[Answer]) -> None:
    record.answers = [read_plain(answer.text) for answer in answers]
    record.checked = [i for i, (text, answer) in enumerate(zip(record.answers, answers)) if text and not answer.cut_off]
    if any(answer.cut_off for answer in answers):
        record.issues.append("truncated")
    if not all(record.answers):
        record.issues.append("empty_answer")


def _derive(results: Mapping[str, Any], max_questions: int) -> _Record:
    """What a record's step results so far give, step by step (a step's part stays None until
    its answers are in and every step it rests on gave something to ask)."""
    record = _Record()
    caption = _answers(results, "caption", 1)
    if caption is None:
        return record
    _read_caption(record, caption[0])
    checks = _answers(results, "sentence_checks", len(record.sentences))
    if checks is None:
        return record
    record.verdicts = _read_checks(checks, record.issues)
    if not record.golden:
        if record.caption:
            record.issues.append("no_golden_sentences")
        return record
    questions = _answers(results, "questions", 1)
    if questions is None:
        return record
    if questions[0].cut_off:
        record.issues.append("truncated")
    record.questions = detail_questions(questions[0].text, max_questions, questions[0].finish_reason)
    if not record.questions:
        record.issues.append("no_questions")
    details = _answers(results, "details", len(record.questions))
    if details is None:
        return record
    _read_details(record, details)
    detail_checks = _answers(results, "detail_checks", len(record.checked))
    if detail_checks is not None:
        record.detail_verdicts = _read_checks(detail_checks, record.issues)
    return record


def step_texts(step: str, results: Mapping[str, Any], max_questions: int) -> list[str]:
    """The user texts of a record's requests for ``step`` (after the first, in :data:`STEPS`),
    from the results of the steps before it; none when the record has nothing left to ask."""
    record = _derive({name: results[name] for name in STEPS[:STEPS.index(step)] if name in results}, max_questions)
    if step == "sentence_checks":
        return [SENTENCE_CHECK_PROMPT.format(text=s) for s in record.sentences or []]
    if step == "questions":
        return [questions_prompt(record.golden)] if record.golden else []
    if step == "details":
        return list(record.questions or [])
    if step == "detail_checks":
        return [DETAIL_CHECK_PROMPT.format(text=record.answers[i]) for i in record.checked or []]
    return [fusion_prompt(record.golden, record.kept())] if record.detail_verdicts is not None else []


def read(results: Mapping[str, Any], max_questions: int) -> Parse:
    """A record's outputs (:data:`FIELDS` and the kept detail pairs) from every step's result,
    with the status and issues of the module docstring."""
    record = _derive(results, max_questions)
    final = _answers(results, "fusion", 1) if record.detail_verdicts is not None else None
    final_caption = read_plain(final[0].text) if final else ""
    issues = record.issues
    if final and final[0].cut_off:
        issues.append("truncated")
    if final and not final_caption:
        issues.append("empty_final_caption")
    issues.extend(plain_issues(final_caption))
    qas = check_pairs(record.kept(), issues)
    if record.detail_verdicts is not None and not qas:
        issues.append("no_pairs")
    verdicts = dict(zip(record.checked or [], record.detail_verdicts or []))
    fields = {
        "init_caption": record.caption,
        "sentences": [{"text": s, "verdict": v} for s, v in zip(record.sentences or [], record.verdicts or [])],
        "golden_sentences": record.golden,
        "questions": list(record.questions or []),
        "details": [{"question": q, "answer": a, "verdict": verdicts.get(i, "unchecked")}
                    for i, (q, a) in enumerate(zip(record.questions or [], record.answers or []))],
        "final_caption": final_caption,
    }
    return Outputs(fields, qas, issues, "truncated" in issues).parse(usable=bool(final_caption or qas))


def _asks(step: str, inp: StepInput) -> dict[str, Ask]:
    """A record's requests of a fan-out step, keyed by their order."""
    return {str(n): Ask(text, images=STEP_IMAGES[step])
            for n, text in enumerate(step_texts(step, inp.results, inp.settings["max_questions"]))}


def _in_order(inp: StepInput, answers: dict[str, Answer]) -> list[Answer]:
    """A fan-out step's result: its answers in request order."""
    return [answers[str(n)] for n in range(len(answers))]


SCALE_CAPTION = Pipeline(
    "scale_caption",
    (Step("caption", SYSTEM_PROMPT, CAPTION_PROMPT, images=True, schema=None),
     *(Step(name, SYSTEM_PROMPT, "", images=STEP_IMAGES[name], schema=None, asks=partial(_asks, name),
            collect=_in_order) for name in STEPS[1:])),
    fields=FIELDS,
    reader=lambda inp: read(inp.results, inp.settings["max_questions"]),
    about="a dense caption checked sentence by sentence, and the detail pairs that passed their check",
)
