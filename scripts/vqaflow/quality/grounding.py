"""Grounding: whether an answer is found in the article it was written from."""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"\w+")
ANSWER_PARTS = re.compile(r",|;|\band\b")


def _words(text: str) -> list[str]:
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return WORD.findall(text.lower())


def _phrase(text: str) -> str:
    return " " + " ".join(_words(text)) + " "


def grounding(qas: list[dict], context: str) -> list[bool]:
    """:func:`is_grounded` for every pair's answer against one context."""
    haystack = _phrase(context)
    return [_found(qa["answer"], haystack) for qa in qas]


def is_grounded(answer: str, context: str) -> bool:
    """Whether the answer is found in the context (case, punctuation and spacing ignored;
    every part of a comma-separated multiple answer must be found)."""
    return _found(answer, _phrase(context))


def _found(answer: str, haystack: str) -> bool:
    parts = [phrase for part in ANSWER_PARTS.split(answer) if (phrase := _phrase(part)).strip()]
    return bool(parts) and all(phrase in haystack for phrase in parts)
