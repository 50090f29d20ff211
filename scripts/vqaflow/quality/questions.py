"""Questions over the whole dataset: repeats on the same image, and how diverse they are.

Repeats (:class:`QuestionRepeats`, run by the finish stage over the records in input order,
whatever shard they are in). Two pairs are about the same image when their records have the
same image value (a path, URL or embedded image's digest; a multi-image record's whole list).
A pair is flagged, on its later occurrence only:

``duplicate_question``
    Its question is the same (:func:`.text.question_key`: case, punctuation and spacing
    ignored) as a pair of an earlier record with the same image. (The same question earlier in
    the same record is flagged so by the rule filters already.)
``near_duplicate_question``
    Not the same, but nearly: the Jaccard similarity of the token sets
    (:func:`.text.question_tokens`) with an earlier question of the same image (earlier records
    first, then earlier in its own record) is at least :data:`NEAR_DUPLICATE_THRESHOLD`. With
    0.8, "What is the color of the car?" and "What color is the car?" match (5/6), "What color
    is the car?" and "What color is the house?" do not (4/6).

Memory is bounded by questions, not records: a first pass counts the records of each image
(a 64-bit hash per image); only images with more than one record keep their questions (a
hash and a token set each), and only until their last record has gone by. The hashes are
Python's string hashes: stable within a process, which is all the counting needs.

Diversity (:class:`Diversity`, for stats.json): how many questions there are, how many are
distinct (a 64-bit hash per question), and the most repeated *templates*: the question with
numbers, quoted text, names and the noun phrases after a determiner masked (:func:`template`),
so "What color is the red car?" and "What color is the old house?" are both "what color is
the _". The templates are counted with the Misra-Gries summary (:data:`TEMPLATE_SLOTS` slots):
exact while there are no more distinct templates than slots, otherwise a count may be low by at
most questions / slots (``templates_exact`` says which).
"""

from __future__ import annotations

import functools
import re
from array import array
from collections import Counter

from .text import has_cjk, nfkc, normalise, question_key, question_tokens

NEAR_DUPLICATE_THRESHOLD = 0.8
TOP_TEMPLATES = 10
TEMPLATE_SLOTS = 10_000

# A noun phrase starts after one of these and runs to the next word of _PHRASE_END (or the end).
_DETERMINERS = frozenset(
    "the a an this that these those his her its their my your our each every some any many much few "
    "several all both no another other".split()
)
_PHRASE_END = frozenset(
    "what which who whom whose when where why how whether is are was were be been being am do does did "
    "can could will would shall should may might must has have had in on at of for with from to by about "
    "under over behind near between into onto through during above below beside next than as and "
    "or but if not there here".split()
) | _DETERMINERS
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|‘[^’]*’|'[^']*'(?!\w)|«[^»]*»|「[^」]*」")
_NAME = re.compile(r"(?<=[\w,;:] )(?!I\b)[A-Z][\w'’-]*")  # a capitalised word that does not open the question
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MASK, _NUMBER_MASK = "_", "#"
_MASKED, _NUMBERED = "zqmaskedqz", "zqnumberqz"  # words that survive normalise() until replaced


@functools.lru_cache(maxsize=1024)
def _tokens(key: str) -> frozenset[str]:
    """:func:`.text.question_tokens` of a question whose key (:func:`.text.question_key`) is
    ``key``: its words, unless it holds CJK (then character bigrams too)."""
    return question_tokens(key) if has_cjk(key) else frozenset(key.split())


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def template(question: str) -> str:
    """The question with what varies from one image to the next masked as ``_`` (numbers as
    ``#``): quoted text, capitalised words after the first (names), and the words after a
    determiner up to the next function word (the noun phrase). A heuristic: it needs no
    tagger, and questions in scripts without spaces keep all but their numbers."""
    text = _QUOTED.sub(f" {_MASKED} ", nfkc(question))
    text = _NAME.sub(_MASKED, text)
    text = _NUMBER.sub(f" {_NUMBERED} ", text)
    words: list[str] = []
    masking = False
    for word in normalise(text).split():
        if word not in (_NUMBERED, _MASKED):  # inside a run of CJK, written without spaces
            word = word.replace(_NUMBERED, _NUMBER_MASK).replace(_MASKED, _MASK)
        if word == _NUMBERED:  # a count opens a noun phrase too: "the 2 plaques"
            words.append(_NUMBER_MASK)
            masking = True
            continue
        if word == _MASKED or (masking and word not in _PHRASE_END):
            if not words or words[-1] != _MASK:
                words.append(_MASK)
            continue
        masking = word in _DETERMINERS
        words.append(word)
    return " ".join(words)


class QuestionRepeats:
    """Flags repeated questions over records given in input order (see the module doc).
    ``shared``: how many records each image with more than one has (:meth:`count`)."""

    def __init__(self, shared: dict[int, int], threshold: float = NEAR_DUPLICATE_THRESHOLD):
        self.remaining = shared
        self.threshold = threshold
        self.seen: dict[int, list[tuple[int, frozenset[str]]]] = {}  # image -> (key hash, tokens) so far
        self.flagged: Counter = Counter()

    @staticmethod
    def count(images) -> dict[int, int]:
        """The records of every image that has more than one, from the image values of all
        records (None for a record without an image), keyed by their hash."""
        counts = Counter(hash(image) for image in images if image is not None)
        return {image: count for image, count in counts.items() if count > 1}

    def flag(self, image: str | None, qas: list[dict]) -> int:
        """Append ``duplicate_question`` / ``near_duplicate_question`` to the ``flags`` of the
        pairs of one record (``image``: its image value as a string, None without one).
        Returns how many flags it added."""
        hashed_image = hash(image) if image is not None else None
        earlier = self.seen.get(hashed_image, ())
        earlier_keys = {key for key, _ in earlier}
        own: list[tuple[int, str]] = []
        added = 0
        for qa in qas:
            key = question_key(str(qa.get("question") or ""))
            if not key:
                continue
            hashed = hash(key)
            flags = qa.setdefault("flags", [])
            if hashed in earlier_keys:
                added += self._add(flags, "duplicate_question")
            elif "duplicate_question" not in flags and (earlier or own) and self._near(key, earlier, own):
                added += self._add(flags, "near_duplicate_question")
            own.append((hashed, key))
        left = self.remaining.get(hashed_image, 0) - 1  # the image's records still to come
        if left > 0:
            self.remaining[hashed_image] = left
            self.seen.setdefault(hashed_image, []).extend((hashed, _tokens(key)) for hashed, key in own)
        elif left == 0:  # its last record: forget the image
            del self.remaining[hashed_image]
            self.seen.pop(hashed_image, None)
        return added

    def _near(self, key: str, earlier, own: list[tuple[int, str]]) -> bool:
        tokens = _tokens(key)
        return (any(jaccard(tokens, other) >= self.threshold for _, other in earlier)
                or any(jaccard(tokens, _tokens(mine)) >= self.threshold for _, mine in own))

    def _add(self, flags: list[str], flag: str) -> int:
        if flag in flags:
            return 0
        flags.append(flag)
        self.flagged[flag] += 1
        return 1


class Diversity:
    """How diverse a dataset's questions are, one question at a time (see the module doc)."""

    def __init__(self, slots: int = TEMPLATE_SLOTS):
        self.questions = 0
        self.hashes = array("q")
        self.slots = slots
        self.templates: dict[str, int] = {}
        self.exact = True

    def add(self, question: str) -> None:
        key = question_key(question)
        if not key:
            return
        self.questions += 1
        self.hashes.append(hash(key))
        shape = template(question)
        if shape in self.templates:
            self.templates[shape] += 1
        elif len(self.templates) < self.slots:
            self.templates[shape] = 1
        else:  # Misra-Gries: one less for every template held, the ones at zero go
            self.exact = False
            self.templates = {held: count - 1 for held, count in self.templates.items() if count > 1}

    def stats(self, top: int = TOP_TEMPLATES) -> dict:
        unique = _distinct(self.hashes)
        ranked = sorted(self.templates.items(), key=lambda item: (-item[1], item[0]))[:top]
        return {
            "questions": self.questions,
            "unique_questions": unique,
            "unique_share": round(unique / self.questions, 6) if self.questions else 0.0,
            "top_templates": [{"template": shape, "count": count,
                               "share": round(count / self.questions, 6)} for shape, count in ranked],
            "templates_exact": self.exact,
        }


def _distinct(hashes: array) -> int:
    """How many distinct values an array of 64-bit hashes holds (sorted in place of a set:
    8 bytes a question)."""
    if not hashes:
        return 0
    import numpy as np

    values = np.frombuffer(hashes, dtype=np.int64).copy()
    values.sort()
    return int(1 + np.count_nonzero(values[1:] != values[:-1]))
