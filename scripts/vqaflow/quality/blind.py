"""The blind check: a record's questions asked without its image, answers compared by code.

One text-only request per record carries the questions (and the article, for pipelines with
one), numbered from 1, and asks for a best guess at each:

    {"answers": [{"index": 1, "answer": "..."}, ...]}

:func:`blind_text` builds the user text, :data:`ANSWER_SCHEMA` is the strict schema for
structured outputs, :func:`read_answers` maps an answer back onto the questions (JSON first,
numbered lines otherwise; never guessing which question an answer belongs to) and
:func:`matches` decides whether a blind answer equals the pair's answer. A pair whose answer
is yes or no (:func:`yes_no`) is not asked: a guess is right half the time.
"""

from __future__ import annotations

import re

from .parse import read_json
from .text import normalise, pick, read_index

FLAG = "answerable_without_image"  # the pair flag of a pair the blind request answered right

BLIND_SYSTEM_PROMPT = (
    "You answer questions about an image you cannot see. You never refuse and never say that "
    "you cannot see the image: when you cannot know, you give your most likely guess. You "
    "answer with JSON only."
)

_GUESS = (
    "Answer each question anyway with your most likely guess. Answer with a single word or a "
    "short phrase, as briefly as possible, without explanation; give several answers, "
    "separated by commas, only when the question asks for several.\n"
)

BLIND_PROMPT_IMAGE_ONLY = (
    "The questions below are about an image that you cannot see. Use common sense and what "
    "is usual for such questions.\n" + _GUESS
)

BLIND_PROMPT_WITH_ARTICLE = (
    "The questions below are about an image that you cannot see. The article below was "
    "written about that image: use it, common sense and what is usual for such questions.\n"
    + _GUESS
)

ANSWER_FORMAT = (
    "Answer with a JSON object and nothing else, one answer per question, in the order the "
    "questions were given, with the question's number as index (the first question has "
    "index 1):\n"
    '{{"answers": [{{"index": 1, "answer": "<a word or a short phrase>"}}, ...]}}\n'
    "{count}"
)

ANSWER_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "answers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer"}, "answer": {"type": "string"}},
                "required": ["index", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["answers"],
    "additionalProperties": False,
}

# Issue codes of read_answers.
ISSUES = (
    "numbered_lines",  # not JSON: the answers were read from numbered lines
    "bad_index",  # an index that is not a number from 1 to the number of questions: ignored
    "missing_index",  # no answer carries an index: the order is used when the count matches, else none
    "duplicate_index",  # two different answers for one question: neither is used
    "cut_off",  # the answer stopped at max_tokens: its last answer read is not used
    "missing_answers",  # at least one question has no readable answer
)

_LIST_KEYS = ("answers", "answer", "results", "items")
_INDEX_KEYS = ("index", "idx", "id", "number", "question_index", "question_number")
_ANSWER_KEYS = ("answer", "guess", "value", "text")
_NUMBERED = re.compile(
    r"^[ \t>*#-]*(?:q(?:uestion)?|a(?:nswer)?)?[ \t]*#?(\d{1,3})[ \t]*(?:\*\*)?[ \t]*[.):：-][ \t]*(?:\*\*)?"
    r"[ \t]*(?:(?:answer|a)[ \t]*[:：][ \t]*)?(.*?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_SEPARATORS = re.compile(r"(?<!\d),|,(?!\d)|[;，；、]")
_DIGIT_SPACE = re.compile(r"(?<=\d) (?=\d)")
_ARTICLES = ("a ", "an ", "the ")
_NUMBERS = {word: str(n) for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_YES_NO = frozenset({"yes", "no", "true", "false", "是", "否", "不是", "对", "不对"})


def blind_text(prompt: str, questions: list[str], context: str | None) -> str:
    """The user text of a blind request: the prompt, the article (when ``context`` is not
    None), the numbered questions and the answer format. No answer goes with them."""
    parts = [prompt.strip()]
    if context is not None:
        parts.append("Article:\n" + (context.strip() or "(empty)"))
    parts.append("Questions:\n" + "\n".join(f"{n}. {question.strip()}" for n, question in enumerate(questions, 1)))
    n = len(questions)
    count = ("There is 1 question, so give exactly 1 answer, index 1." if n == 1
             else f"There are {n} questions, so give exactly {n} answers, indexes 1 to {n}.")
    parts.append(ANSWER_FORMAT.format(count=count))
    return "\n\n".join(parts)


def yes_no(answer: str) -> bool:
    """Whether a pair's answer is a bare yes or no (true/false, 是/否): not asked blind."""
    return normalise(answer) in _YES_NO


def _items(text: str) -> frozenset[str]:
    """The comparable items of an answer: split at commas (not inside a number such as
    1,000) and semicolons, each normalised (:func:`vqaflow.quality.text.normalise`), a leading
    article dropped, a number word from zero to twenty written in digits."""
    items = set()
    for part in _SEPARATORS.split(text):
        item = _DIGIT_SPACE.sub("", normalise(part))
        for article in _ARTICLES:
            if item.startswith(article):
                item = item[len(article):]
                break
        if item:
            items.add(_NUMBERS.get(item, item))
    return frozenset(items)


def matches(blind: str, answer: str) -> bool:
    """Whether a blind answer is right: it has at least one item and every item of it is one
    of the pair's answer's items (see :func:`_items`). ``"four"`` matches ``"4"``, ``"Paris"``
    matches ``"Paris, France"``; ``"red, green"`` does not match ``"red, white"``."""
    guessed = _items(blind)
    return bool(guessed) and guessed <= _items(answer)


def _text(value: object) -> str | None:
    """An answer value as text: a string, a number, or a list of strings (joined by commas)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return ", ".join(item.strip() for item in value)
    return None


def _json_items(data: object) -> list[tuple[int | None, bool, str | None]] | None:
    """(index, had an index, answer) of each answer in a decoded answer, or None (no list)."""
    if isinstance(data, dict):
        found = pick(data, _LIST_KEYS)
        if isinstance(found, (list, dict)):
            return _json_items(found)
        if found is not None and pick(data, _INDEX_KEYS) is not None:  # one answer, bare
            return _json_items([data])
        if data and all(read_index(key) is not None for key in data):  # {"1": "Paris", "2": "4"}
            return [(read_index(key), True, _text(value)) for key, value in data.items()]
        return None
    if not isinstance(data, list):
        return None
    read = []
    for item in data:
        if isinstance(item, dict):
            has_index = pick(item, _INDEX_KEYS) is not None
            read.append((read_index(pick(item, _INDEX_KEYS)), has_index, _text(pick(item, _ANSWER_KEYS))))
        else:
            read.append((None, False, _text(item)))
    return read


def _line_items(text: str) -> list[tuple[int | None, bool, str | None]]:
    """(index, True, answer) of each numbered line, without markdown emphasis around it; an
    answer holding a question mark (the question written again) is not read."""
    return [(int(number), True, None if "?" in answer or "？" in answer else answer.strip(" *_`") or None)
            for number, answer in _NUMBERED.findall(text)]


def read_answers(text: str, n_questions: int, cut_off: bool = False) -> tuple[list[str | None], list[str]]:
    """The blind answer to each of ``n_questions`` questions (None where none is readable)
    and issue codes (:data:`ISSUES`, in order of occurrence). ``cut_off``: the answer stopped
    at max_tokens, so the last answer read may be cut and is not used."""
    issues: list[str] = []
    items = _json_items(read_json(text))
    if items is None:
        issues.append("numbered_lines")
        items = _line_items(text)
    if cut_off and items:
        issues.append("cut_off")
        items = items[:-1]
    if items and not any(has_index for _, has_index, _ in items):
        issues.append("missing_index")  # which question an answer is for: its place, when all are there
        items = [(position, True, answer) for position, (_, _, answer) in enumerate(items, 1)
                 if len(items) == n_questions]
    answers: list[str | None] = [None] * n_questions
    seen: dict[int, str | None] = {}
    for index, has_index, answer in items:
        if not has_index or index is None or not 1 <= index <= n_questions:
            issues.append("bad_index")
        elif index in seen:
            issues.append("duplicate_index")
            if seen[index] != answer:
                seen[index] = None
        else:
            seen[index] = answer
    for index, answer in seen.items():
        answers[index - 1] = answer
    if None in answers:
        issues.append("missing_answers")
    return answers, list(dict.fromkeys(issues))
