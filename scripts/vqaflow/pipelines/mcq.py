"""``visual_mcq``: multiple-choice questions that need the image (CapRL; DataFlow-MM's
``image_visual_only_mcq`` pipeline and its ``VisualDependencyRefiner``).

- Step ``generate``: one request with the image asks for ``mcq.questions`` MCQs (upstream's
  prompts, the count filled in; :data:`~vqaflow.quality.mcq_read.MCQ_SCHEMA` with
  ``structured_output``), read by :func:`~vqaflow.quality.mcq_read.parse_mcqs` (complete MCQs
  only, deduplicated by question and answer).
- Step ``rotations``: each MCQ asked again ``mcq.rotations`` times with its options reordered
  (:mod:`vqaflow.quality.mcq`), with the image ("None of the above" added; sub-key
  ``q<i>.r<j>.visual``) and without it (a text-only request; ``q<i>.r<j>.blind``): 1 + 2 ×
  questions × rotations requests a record (41 by default).

Outputs: ``mcq``, the kept MCQs ``{question, options: {A, B, C, D}, answer, visual_accuracy,
blind_accuracy}`` (kept: visual accuracy ≥ ``mcq.min_visual`` and blind accuracy ≤
``mcq.max_blind``); ``mcq_dropped`` (a side field: also in ``results/<run>/mcq_dropped.jsonl``),
the others with their ``reasons`` (``wrong_with_image``, ``right_without_image``). The status
is the generation's parse (its issue codes: :mod:`vqaflow.quality.mcq_read`), plus
``no_mcq_kept`` when MCQs were read and the test dropped every one (status ``none``).

MCQs are not question-answer pairs: the rotation test is their check (the judge and the rule
filters, made for open answers, would flag every one: its answer is among its options). For
training each kept MCQ is one turn, LLaVA-1.5's multiple-choice format: the question, its options
``A. …`` one a line and "Answer with the option's letter from the given choices directly."; the
answer is the letter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..quality.mcq import ANSWER_SYSTEM_PROMPT, Rotation, rotations, score
from ..quality.mcq_read import MCQ_SCHEMA, OPTION_LETTERS, parse_mcqs
from .base import ONE, Answer, Ask, Outputs, Pipeline, Step, StepInput

GENERATE_SYSTEM_PROMPT = (
    "Your task is to generate {count_word} multiple-choice questions and their answers about the object "
    "based on the provided image. The questions should be challenging and focus on the image content.\n"
    "Format:\n"
    "#### 1. **Question?**\n"
    "   - A) Option\n"
    "   - B) Option\n"
    "   - C) Option\n"
    "   - D) Option\n\n"
    "**Answer:** A) Option\n"
    "------\n"
    "All questions must be answerable from the image alone."
)
GENERATE_PROMPT = "Generate {count} MCQs based on the image."
COUNT_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
DEFAULT_QUESTIONS = 5
TRAINING_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def generate_prompts(settings: Mapping[str, Any]) -> tuple[str, str]:
    """Upstream's system prompt and user prompt asking for ``settings["questions"]`` MCQs."""
    count = settings.get("questions", DEFAULT_QUESTIONS)
    word = COUNT_WORDS[count - 1] if 1 <= count <= len(COUNT_WORDS) else str(count)
    return GENERATE_SYSTEM_PROMPT.format(count_word=word), GENERATE_PROMPT.format(count=count)


def _generated(inp: StepInput, answers: dict[str, Answer]) -> dict:
    """The generation's answer read into complete MCQs, with its parse."""
    answer = answers[ONE]
    parsed = parse_mcqs(answer.text, inp.settings["questions"], answer.finish_reason)
    return {"mcqs": parsed.mcqs, "issues": list(parsed.issues), "truncated": parsed.truncated,
            "unread": list(parsed.unread)}


def _rotations(inp: StepInput) -> dict[str, tuple[int, Rotation]]:
    """Every rotation of the record's MCQs by sub-key, with the MCQ's position."""
    asked = {}
    for index, mcq in enumerate(inp.results["generate"]["mcqs"]):
        for kind in ("visual", "blind"):
            turns = rotations(mcq, inp.settings["rotations"], inp.seed, inp.record_id, index, kind == "visual")
            asked.update({f"q{index}.r{turn}.{kind}": (index, rotation) for turn, rotation in enumerate(turns)})
    return asked


def _asks(inp: StepInput) -> dict[str, Ask]:
    """The rotation requests: with the image for ``visual``, text-only for ``blind``."""
    return {sub: Ask(rotation.prompt, images=sub.endswith(".visual"))
            for sub, (_, rotation) in _rotations(inp).items()}


def _scored(inp: StepInput, answers: dict[str, Answer]) -> dict:
    """Each MCQ scored on its rotations' answers: the kept ones and the dropped ones with why."""
    asked: dict[int, dict[str, list]] = {}
    for sub, (index, rotation) in _rotations(inp).items():
        kind = sub.rpartition(".")[2]
        asked.setdefault(index, {"visual": [], "blind": []})[kind].append((rotation, answers[sub].text))
    kept, dropped = [], []
    for index, mcq in enumerate(inp.results["generate"]["mcqs"]):
        item, reasons = score(mcq, asked[index]["visual"], asked[index]["blind"], inp.settings["min_visual"],
                              inp.settings["max_blind"])
        if reasons:
            dropped.append({**item, "reasons": reasons})
        else:
            kept.append(item)
    return {"kept": kept, "dropped": dropped}


def _read(inp: StepInput) -> Any:
    """The record's outputs: the kept MCQs, the dropped ones, the generation's parse."""
    generated, scored = inp.results["generate"], inp.results["rotations"]
    issues = list(generated["issues"])
    if generated["mcqs"] and not scored["kept"]:
        issues.append("no_mcq_kept")
    outputs = Outputs(fields={"mcq": scored["kept"], "mcq_dropped": scored["dropped"]}, issues=issues,
                      truncated=generated["truncated"], unread=tuple(generated["unread"]))
    return outputs.parse(usable=bool(scored["kept"]))


def training_turns(fields: Mapping[str, Any]) -> list[dict]:
    """One training turn per kept MCQ: the question with its options → the letter."""
    turns = []
    for mcq in fields.get("mcq") or []:
        options = "\n".join(f"{letter}. {mcq['options'][letter]}" for letter in OPTION_LETTERS)
        turns.append({"question": f"{mcq['question']}\n{options}\n{TRAINING_INSTRUCTION}", "answer": mcq["answer"]})
    return turns


_DEFAULT_SYSTEM, _DEFAULT_PROMPT = generate_prompts({})

VISUAL_MCQ = Pipeline(
    "visual_mcq",
    (Step("generate", _DEFAULT_SYSTEM, _DEFAULT_PROMPT, True, MCQ_SCHEMA, collect=_generated),
     Step("rotations", ANSWER_SYSTEM_PROMPT, "", True, None, asks=_asks, collect=_scored)),
    fields=("mcq",),
    pairs=False,
    reader=_read,
    training=training_turns,
    about="multiple-choice questions kept only when answered right with the image and not without it",
    side=("mcq_dropped",),
    prompts=generate_prompts,
)
