"""The visual-dependency test of multiple-choice questions (CapRL; DataFlow-MM's
``VisualDependencyRefiner``): upstream's answer prompt, the rotations, reading a letter, the scores.

Each MCQ read by :mod:`.mcq_read` is asked again ``rotations`` times with its options
reordered, with the image ("None of the above" added as a last option, as upstream does) and
without it (text-only, the four options only, as upstream). The rotations are deterministic:
they derive from the run's seed, the record id and the MCQ's position; the right option takes
a different letter in each rotation (A–D in a seeded order, cycling when there are more than
four), so a model that always answers "A" scores 1/4, and the other options are in a seeded
order. An answer is right only when :func:`read_letter` reads the rotation's right letter
from it; anything it cannot read is wrong, never a guess. An MCQ is kept when its visual
accuracy is at least ``min_visual`` and its blind accuracy at most ``max_blind``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..digests import value_digest
from .answer_lines import clean
from .mcq_read import LETTERS, NONE_OF_THE_ABOVE, OPTION_LETTERS
from .parse import read_plain
from .text import normalise

ANSWER_SYSTEM_PROMPT = "You are a helpful assistant."
ANSWER_PROMPT = "{question}\nAnswer the question with only the correct letter."
WRONG_WITH_IMAGE = "wrong_with_image"  # visual accuracy below min_visual
RIGHT_WITHOUT_IMAGE = "right_without_image"  # blind accuracy above max_blind

_LETTER_ANSWER = re.compile(  # "B", "(B)", "B.", "B) red", "Answer: B", "The correct answer is B", "答案：B"
    r"(?:(?i:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?)\s*[:：]?\s*|(?:正确)?答案\s*[:：是为]?\s*)?"
    r"[(（\[]?([A-H])(?![A-Za-z])[)）\]]?(?:\s*[).．:：、\-–—]?\s*(.*))?")


def mcq_text(question: str, options: Sequence[str]) -> str:
    """A question with its options as upstream writes them (``   - A) …`` one a line)."""
    return "\n".join([question, *(f"   - {letter}) {text}" for letter, text in zip(LETTERS, options))])


@dataclass(frozen=True)
class Rotation:
    """One asking of an MCQ: its options in this rotation's order and the right letter."""

    question: str
    options: tuple[str, ...]
    answer: str  # the right letter

    @property
    def prompt(self) -> str:
        """The user text of this rotation's request (upstream's instruction)."""
        return ANSWER_PROMPT.format(question=mcq_text(self.question, self.options))


def rotations(mcq: dict, count: int, seed: int | None, record_id: str, index: int, visual: bool) -> list[Rotation]:
    """The ``count`` rotations of the ``index``-th MCQ of a record, with the image (``visual``:
    "None of the above" added last) or without it; the same arguments give the same rotations."""
    base = ["mcq", seed, record_id, index, "visual" if visual else "blind"]
    right = mcq["options"][mcq["answer"]]
    others = [n for n, letter in enumerate(OPTION_LETTERS) if letter != mcq["answer"]]
    slots = sorted(range(len(OPTION_LETTERS)), key=lambda slot: value_digest([*base, "slot", slot]))
    found = []
    for turn in range(count):
        order = sorted(others, key=lambda n: value_digest([*base, turn, n]))
        texts = [mcq["options"][OPTION_LETTERS[n]] for n in order]
        slot = slots[turn % len(slots)]
        texts.insert(slot, right)
        if visual:
            texts.append(NONE_OF_THE_ABOVE)
        found.append(Rotation(mcq["question"], tuple(texts), LETTERS[slot]))
    return found


def read_letter(answer: str, rotation: Rotation) -> str | None:
    """The letter an answer gives: a bare ``B``, ``B.``, ``(B)``, ``**B**``, ``Answer: B``, ``The
    answer is B``, ``答案：B``, or the letter with its option's text (``B) red``); a lower-case
    letter only alone. None for anything else, for a letter the rotation does not offer and
    for a letter followed by another option's text or by anything more."""
    text = clean(read_plain(answer)).strip().rstrip(".。")
    if len(text) == 1 and text.isalpha():
        text = text.upper()
    found = _LETTER_ANSWER.fullmatch(text)
    if not found:
        return None
    letter, said = found.group(1), found.group(2)
    position = LETTERS.find(letter)
    if position >= len(rotation.options):
        return None
    if said and normalise(said) != normalise(rotation.options[position]):
        return None
    return letter


def accuracy(asked: Sequence[tuple[Rotation, str]]) -> float:
    """The share of rotations answered with their right letter (``asked``: each rotation with
    its answer)."""
    return sum(read_letter(answer, rotation) == rotation.answer for rotation, answer in asked) / len(asked)


def score(mcq: dict, visual: Sequence[tuple[Rotation, str]], blind: Sequence[tuple[Rotation, str]],
          min_visual: float, max_blind: float) -> tuple[dict, list[str]]:
    """The MCQ with its ``visual_accuracy`` and ``blind_accuracy``, and why it is dropped
    (:data:`WRONG_WITH_IMAGE`, :data:`RIGHT_WITHOUT_IMAGE`; empty when kept)."""
    item = {**mcq, "visual_accuracy": accuracy(visual), "blind_accuracy": accuracy(blind)}
    reasons = []
    if item["visual_accuracy"] < min_visual:
        reasons.append(WRONG_WITH_IMAGE)
    if item["blind_accuracy"] > max_blind:
        reasons.append(RIGHT_WITHOUT_IMAGE)
    return item, reasons
