"""Grounding: whether an answer is found in the article it was written from."""

from __future__ import annotations

import re

from .text import contains, normalise

ANSWER_PARTS = re.compile(r",|;|\band\b")


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
