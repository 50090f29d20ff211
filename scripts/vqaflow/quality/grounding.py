"""Grounding: whether an answer is found in the article it was written from."""

from __future__ import annotations

import re

from .text import contains, normalise, word_count

ANSWER_PARTS = re.compile(r"[,;，、；]|\band\b")
REMARK_WORDS = 4  # words after the opening part that make it a remark, not a gloss ("紫禁城（Forbidden City）")
OPENING_ENDS = re.compile(r"\s+[-–—]+\s+|[.;:。；：]\s|\s*[(（\[]|[,，]\s*")  # where an answer's opening part may end


def grounding(qas: list[dict], context: str) -> list[bool]:
    """:func:`is_grounded` for every pair's answer against one context."""
    haystack = normalise(context)
    return [_found(qa["answer"], haystack) for qa in qas]


def is_grounded(answer: str, context: str) -> bool:
    """Whether the answer is found in the context (:func:`.text.normalise`: case, punctuation and
    spacing ignored; :func:`.text.contains`: whole words, or anywhere for CJK; every part of a
    comma-separated multiple answer must be found)."""
    return _found(answer, normalise(context))


def _found(answer: str, haystack: str) -> bool:
    parts = [phrase for part in ANSWER_PARTS.split(answer) if (phrase := normalise(part))]
    return bool(parts) and all(contains(phrase, haystack) for phrase in parts)


def opens_grounded(answer: str, context: str) -> bool:
    """Whether an answer is not found in its article while its opening part is (up to a spaced
    dash, a bracket, a full stop, a semicolon or a comma: ``330 metres — the article compares
    it to a building``) and :data:`REMARK_WORDS` words or more follow it: the rest is something
    else than the answer, a remark."""
    return _opens(answer, normalise(context))


def openings_grounded(qas: list[dict], context: str) -> list[bool]:
    """:func:`opens_grounded` for every pair's answer against one context (normalised once)."""
    haystack = normalise(context)
    return [_opens(qa["answer"], haystack) for qa in qas]


def _opens(answer: str, haystack: str) -> bool:
    if _found(answer, haystack):
        return False
    return any(_found(answer[:end.start()], haystack) and word_count(answer[end.end():]) >= REMARK_WORDS
               for end in OPENING_ENDS.finditer(answer) if end.start())
