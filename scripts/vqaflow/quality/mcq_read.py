"""Reading multiple-choice questions (MCQs) from a model's answer.

:func:`parse_mcqs` reads the JSON of :data:`MCQ_SCHEMA` (or any JSON list of objects with a
question, options and an answer; options as an object by letter, a list, or letter keys on the
item) or free text in the shapes models write: upstream's markdown (``#### 1. **Question?**``,
``- A) Option``, ``**Answer:** A) Option``), numbered or labelled questions (``1.``, ``Q1:``,
``Question 1:``, ``问题1：``, ``第1题``), options one a line or inline (``A) … B) … C) … D) …``,
``(A)``, ``A.``, ``A．``, ``A、``), the answer on its own line, inline, on the next line after a
bare ``Answer:`` or in an answer key after the questions (``Answers: 1. B 2. C``).

An MCQ is kept only when it was read completely: a question, exactly four options A–D with
distinct texts (none of them "None of the above", which the rotation test adds), and one answer
letter among them (the letter, the letter with its option's text, or the text of exactly one
option). Status: ``ok`` only when MCQs were read, every line of the answer was read or
recognised (blank lines, separators, headings, chatter, ``Options:`` and explanation labels) and
no issue was raised; ``none`` when no MCQ was read; else ``partial``. Issue codes:

- ``truncated``: the backend stopped at ``max_tokens``; ``partial_json``: the JSON was cut off
  (its last item is dropped unless it closed).
- ``incomplete_mcq``: a question without text, without four options or without an answer (dropped).
- ``bad_options``: an option letter beyond D or given twice, two options alike, or an option
  "None of the above" (dropped).
- ``bad_answer``: an answer that is not one option's letter, or whose text is not that option's (dropped).
- ``duplicate_mcq``: the same question and right option as an earlier MCQ (dropped).
- ``fewer_mcqs`` / ``extra_mcqs``: fewer MCQs than asked / more (the first ones kept).
- ``no_mcqs``: nothing complete was read.
- ``unread_text``: text neither read nor recognised (``McqParse.unread`` shows up to 3 spans, shortened).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .accounting import UNREAD_CHARS, UNREAD_SHOWN
from .answer_json import json_values
from .answer_lines import chatty, clean, join_lines, strip_emphasis
from .parse import read_plain
from .text import key_name, normalise, pick

OPTION_LETTERS = ("A", "B", "C", "D")
NONE_OF_THE_ABOVE = "None of the above"

MCQ_SCHEMA = {
    "type": "object",
    "properties": {"mcqs": {"type": "array", "items": {
        "type": "object",
        "properties": {
            "question": {"type": "string"},
            "options": {"type": "object", "properties": {letter: {"type": "string"} for letter in OPTION_LETTERS},
                        "required": list(OPTION_LETTERS), "additionalProperties": False},
            "answer": {"type": "string", "enum": list(OPTION_LETTERS)},
        },
        "required": ["question", "options", "answer"],
        "additionalProperties": False,
    }}},
    "required": ["mcqs"],
    "additionalProperties": False,
}

QUESTION_KEYS = ("question", "stem", "q", "问题", "题目")
OPTION_KEYS = ("options", "choices", "选项")
ANSWER_KEYS = ("answer", "correct_answer", "correct_option", "correct", "answer_letter", "答案", "正确答案")
OPTION_TEXT_KEYS = ("text", "content", "option", "value")
LETTERS = "ABCDEFGH"
IGNORED_KEYS = frozenset({"explanation", "reason", "rationale", "解析", "解释", "理由", "id", "number", "index", "no"})

_MARKS = re.compile(r"(?:#{1,6}\s*|[-•+>]\s+)*")  # heading marks and bullets
_SEPARATOR = re.compile(r"[-*_=~]{3,}")
_NUMBER = r"(\d{1,3}|[一二三四五六七八九十]{1,3})"
_QUESTION_HEAD = re.compile(
    rf"(?i:question|ques|q|问题|题目|第)\s*{_NUMBER}?\s*题?\s*(?:[:：.)）]\s*|$)|[(（]?{_NUMBER}\s*[.)）、:：](?!\d)\s*")
_OPTION = re.compile(r"[(（\[]?([A-Ha-h])\s*[)）\].．:：、]\s*(.*)")
_INLINE_OPTION = re.compile(r"(?:(?<=\s)|^)[(（]?([A-H])[)）.．:：、]\s*")
_ANSWER = r"(?i:(?:the\s+)?(?:correct\s+)?(?:answer|ans)|correct\s+(?:option|choice)|正确答案|答案)"
_ANSWER_HEAD = re.compile(rf"{_ANSWER}(?:\s*(?i:is)\s+|\s*[:：\-]\s*|\s*$)")
_INLINE_ANSWER = re.compile(rf"\s*[(（\[]?\s*(?<![A-Za-z]){_ANSWER}\s*[:：]\s*")
_KEY_HEAD = re.compile(r"(?i:answers|answer\s*key|answer\s*sheet|答案如下|参考答案)\s*[:：]?\s*")
_KEY_ITEM = re.compile(r"(?i:question|q|问题)?\s*(\d{1,3})\s*[.):：、\-]?\s*(.+)")
_KEY_SPLIT = re.compile(r"[,;，；]\s*|\s+(?=(?i:q|question)?\s*\d{1,3}\s*[.):：、\-])")
_OPTIONS_HEAD = re.compile(r"(?i:options|choices|选项)\s*[:：]?\s*")
_OPTION_KEY = re.compile(r"(?i:option|choice)?[\s_]*[(（]?([A-Ha-h])[)）.]?")
_REMARK = re.compile(r"(?i:explanation|reason|rationale|解析|解释|理由)\s*[:：]")
_ANSWER_LETTER = re.compile(r"[(（\[]?([A-Ha-h])(?![A-Za-z])[)）\]]?\s*(?:[).．:：、\-–—]\s*)?(.*)")


@dataclass(frozen=True)
class McqParse:
    """What was read from one answer: the complete MCQs (``{question, options: {A..D}, answer}``)."""

    mcqs: list[dict]
    status: str  # "ok" | "partial" | "none"
    issues: tuple[str, ...] = ()
    truncated: bool = False
    unread: tuple[str, ...] = ()


@dataclass
class _Draft:
    """An MCQ as read so far."""

    number: str | None = None
    stem: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    answer: str | None = None  # as written; read against the options at the end
    clash: bool = False  # an option letter given twice, or an option that is not text


def answer_letter(text: str, options: dict[str, str]) -> str | None:
    """The letter of the right option an answer names: ``B``, ``(B)``, ``B) red`` (the text must
    be option B's), or ``red`` (the text of exactly one option); None otherwise."""
    remark = _REMARK.search(text)
    text = clean(text[:remark.start()] if remark else text).strip().rstrip(".。")
    found = _ANSWER_LETTER.fullmatch(text)
    if found:
        letter, said = found.group(1).upper(), found.group(2)
        if letter in options and (not said or normalise(said) == normalise(options[letter])):
            return letter
    named = [letter for letter, option in options.items() if normalise(option) == normalise(text)]
    return named[0] if len(named) == 1 and text else None


def _shortened(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= UNREAD_CHARS else text[:UNREAD_CHARS - 1] + "…"


def _cut_options(text: str) -> tuple[str, dict[str, str]]:
    """(the text before any options, the options) of a line: a run of inline options
    ``A) … B) …`` (two or more, in order), or one option line."""
    run: list[re.Match] = []
    for mark in _INLINE_OPTION.finditer(text):
        if mark.group(1) == "A":
            run = [mark]
        elif run and ord(mark.group(1)) == ord(run[-1].group(1)) + 1:
            run.append(mark)
    if len(run) >= 2:
        ends = [mark.start() for mark in run[1:]] + [len(text)]
        options = {mark.group(1): text[mark.end():end].strip(" ,;，；") for mark, end in zip(run, ends)}
        return text[:run[0].start()].strip(), options
    single = _OPTION.fullmatch(text)
    return ("", {single.group(1).upper(): single.group(2)}) if single else (text, {})


class _Reader:
    """Free text read line by line into drafts; lines neither read nor recognised noted."""

    def __init__(self) -> None:
        self.drafts: list[_Draft] = []
        self.unread: list[str] = []
        self.mode = "text"  # text | answer (the next line answers) | key (an answer key) | remark

    @property
    def open(self) -> _Draft | None:
        """The draft being read (None before the first and after its answer)."""
        draft = self.drafts[-1] if self.drafts else None
        return draft if draft is not None and draft.answer is None else None

    def read(self, text: str) -> None:
        for raw in text.split("\n"):
            plain = strip_emphasis(raw).strip()
            plain = plain[_MARKS.match(plain).end():].strip()
            if not plain or _SEPARATOR.fullmatch(plain):
                self.mode = "text" if self.mode == "remark" else self.mode
            elif not (self.mode == "key" and self._key(plain)):
                self._line(raw, plain)

    def _line(self, raw: str, plain: str) -> None:
        head, key = _QUESTION_HEAD.match(plain), _KEY_HEAD.match(plain)
        if head and _OPTION.fullmatch(plain):
            head = None
        mode, self.mode = self.mode, "text"
        if mode == "answer" and self.open is not None:
            self._answer(self.open, plain)
        elif mode == "remark" and not (head or key or _ANSWER_HEAD.match(plain) or _cut_options(plain)[1]):
            self.mode = "remark"  # the explanation goes on
        elif head:
            self.drafts.append(_Draft(head.group(1) or head.group(2)))
            rest = plain[head.end():]
            again = _QUESTION_HEAD.match(rest)  # "1. Question: …"
            self._take(self.drafts[-1], rest[again.end():] if again else rest)
        elif key:
            self.mode = "key"
            if plain[key.end():] and not self._key(plain[key.end():]):
                self.unread.append(_shortened(plain))
        elif answer := _ANSWER_HEAD.match(plain):
            self._answer_line(plain[answer.end():], raw)
        elif _REMARK.match(plain):
            self.mode = "remark"
        elif _OPTIONS_HEAD.fullmatch(plain):
            pass
        elif _OPTIONS_HEAD.match(plain) and self.open is not None:
            self._take(self.open, plain[_OPTIONS_HEAD.match(plain).end():])
        elif self.open is not None and not (self.open.options and _questionish(plain)):
            self._take(self.open, plain)  # the stem goes on, or the options
        elif _questionish(plain) or (self.open is None and len(_cut_options(plain)[1]) >= 2):
            self.drafts.append(_Draft())
            self._take(self.drafts[-1], plain)
        elif not (chatty(plain) or _title(raw, plain)):
            self.unread.append(_shortened(plain))

    def _answer_line(self, rest: str, raw: str) -> None:
        """``Answer: …``, or a bare ``Answer:`` before the answer's line or an answer key."""
        draft = self.open
        if rest:
            self._answer(draft, rest) if draft is not None else self.unread.append(_shortened(raw))
        else:
            self.mode = "answer" if draft is not None and draft.options else "key"

    def _answer(self, draft: _Draft | None, rest: str) -> None:
        if draft is None or draft.answer is not None:
            self.unread.append(_shortened(rest))
        else:
            draft.answer = rest

    def _take(self, draft: _Draft, text: str) -> None:
        """A line's part of a draft: stem text, options and an inline answer."""
        answer = _INLINE_ANSWER.search(text, 1)
        if answer:
            text, rest = text[:answer.start()], text[answer.end():].rstrip(")）]")
        stem, options = _cut_options(text.strip())
        if stem and (draft.options or draft.answer is not None):
            self.unread.append(_shortened(stem))
        elif stem:
            draft.stem.append(stem)
        for letter, option in options.items():
            draft.clash = draft.clash or letter in draft.options
            draft.options[letter] = option
        if answer:
            draft.answer = rest

    def _key(self, plain: str) -> bool:
        """Whether the line is a line of an answer key (``1. B``, ``1-B, 2-C``); if so, read."""
        items = [_KEY_ITEM.fullmatch(part.strip()) for part in _KEY_SPLIT.split(plain) if part.strip()]
        if not items or not all(items):
            self.mode = "text"
            return False
        numbered = {draft.number: draft for draft in self.drafts if draft.number}
        for item in items:
            draft = numbered.get(item.group(1))
            self._answer(draft, item.group(2))
        return True


def _questionish(text: str) -> bool:
    """Whether an unnumbered, unlabelled line asks (a question mark)."""
    return "?" in text or "？" in text


def _title(raw: str, plain: str) -> bool:
    """A heading, a bold line or a line ending with a colon (``### MCQs``, ``**Image quiz**``)."""
    line = raw.strip()
    return line.startswith("#") or (line.startswith("**") and line.endswith("**")) or plain.endswith((":", "："))


# -- JSON ------------------------------------------------------------------------------------------

def _json_items(value: object) -> list | None:
    """The list of MCQ objects a JSON value holds (the value, a list in it, or the value as one MCQ)."""
    if isinstance(value, dict):
        if pick(value, QUESTION_KEYS) is not None:
            return [value]
        value = next((item for item in value.values() if isinstance(item, list)), None)
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        return value
    return None


def _option_text(value: object) -> str | None:
    """An option's text: a string or number, or an object's ``text``; None for anything else."""
    if isinstance(value, dict):
        value = pick(value, OPTION_TEXT_KEYS)
    return None if isinstance(value, bool) or not isinstance(value, (str, int, float)) else str(value)


def _option_letter(key: object) -> str:
    """An option key as a letter (``"b"``, ``"(B)"``, ``"option_b"``); other keys as they are."""
    key = str(key).strip()
    letter = _OPTION_KEY.fullmatch(key)
    return letter.group(1).upper() if letter else key


def _json_options(item: dict) -> tuple[dict[str, str], bool]:
    """An item's options by letter (an object by letter, a list with or without its labels, or
    letter keys on the item), and whether one was not read (a letter twice, an option not text)."""
    value = pick(item, OPTION_KEYS)
    if isinstance(value, dict):
        pairs = [(_option_letter(key), text) for key, text in value.items()]
    elif isinstance(value, list):
        labelled = [_OPTION.fullmatch(text.strip()) if isinstance(text, str) else None for text in value]
        if all(label and label.group(1).upper() == letter for label, letter in zip(labelled, LETTERS)):
            value = [label.group(2) for label in labelled]
        pairs = list(zip(LETTERS, value)) + [("?", text) for text in value[len(LETTERS):]]
    else:
        pairs = [(_option_letter(key), text) for key, text in item.items()
                 if _OPTION_KEY.fullmatch(str(key).strip()) and key_name(key) not in QUESTION_KEYS]
    texts = {letter: _option_text(text) for letter, text in pairs}
    options = {letter: text for letter, text in texts.items() if text is not None}
    return options, len(options) != len(pairs)


def _from_json(items: list) -> tuple[list[_Draft], list[str]]:
    """Drafts of JSON items; the strings of keys not read noted."""
    drafts, unread = [], []
    known = {*QUESTION_KEYS, *OPTION_KEYS, *ANSWER_KEYS, *IGNORED_KEYS}
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            unread.append(_shortened(str(item)))
            continue
        question, answer = pick(item, QUESTION_KEYS), _option_text(pick(item, ANSWER_KEYS))
        options, clash = _json_options(item)
        drafts.append(_Draft(str(number), [question] if isinstance(question, str) else [], options, answer, clash))
        unread += [_shortened(f"{key}: {value}") for key, value in item.items()
                   if key_name(key) not in known and not _OPTION_KEY.fullmatch(str(key).strip())]
    return drafts, unread


def _outside(text: str) -> list[str]:
    """The lines around a JSON value that are neither blank, a code fence, chatter nor a title."""
    return [_shortened(line) for line in (line.strip() for line in text.split("\n"))
            if line and not line.startswith("```") and not chatty(clean(line)) and not _title(line, clean(line))]


def _read_json(text: str, issues: list[str]) -> tuple[list[_Draft], list[str]] | None:
    """Drafts from the first JSON value holding MCQ objects, the text not read, or None."""
    for value, start, end, complete in json_values(text):
        items = _json_items(value)
        if items is None:
            continue
        drafts, unread = _from_json(items)
        if not complete:
            issues.append("partial_json")
            if drafts and not text.rstrip().endswith(("}", "},")):  # its last item may be cut
                drafts.pop()
                issues.append("incomplete_mcq")
        return drafts, unread + _outside(text[:start]) + _outside(text[end:])
    return None


# -- completing ------------------------------------------------------------------------------------

def _complete(draft: _Draft) -> tuple[dict | None, str | None]:
    """The MCQ a draft makes, or the issue that drops it."""
    question = join_lines(draft.stem)
    options = {letter: clean(text) for letter, text in draft.options.items()}
    if draft.clash:
        return None, "bad_options"
    if not question or draft.answer is None or not set(OPTION_LETTERS) <= set(options) or "" in options.values():
        return None, "incomplete_mcq"
    texts = {normalise(text) for text in options.values()} | {normalise(NONE_OF_THE_ABOVE)}
    if len(options) != len(OPTION_LETTERS) or len(texts) != len(OPTION_LETTERS) + 1:
        return None, "bad_options"
    letter = answer_letter(draft.answer, options)
    if letter is None:
        return None, "bad_answer"
    return {"question": question, "options": {key: options[key] for key in OPTION_LETTERS}, "answer": letter}, None


def parse_mcqs(text: str, questions: int, finish_reason: str | None = None) -> McqParse:
    """Read the MCQs of an answer asking for ``questions`` of them, with an honest status and
    the issues found (see the module docstring); ``finish_reason``: the backend's."""
    text = read_plain(text)
    issues: list[str] = []
    found = _read_json(text, issues) if ("{" in text or "[" in text) else None
    if found is None:
        reader = _Reader()
        reader.read(text)
        found = reader.drafts, reader.unread
    drafts, unread = found
    mcqs: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for draft in drafts:
        mcq, issue = _complete(draft)
        if issue:
            issues.append(issue)
            continue
        key = (normalise(mcq["question"]), normalise(mcq["options"][mcq["answer"]]))
        if key in seen:
            issues.append("duplicate_mcq")
            continue
        seen.add(key)
        mcqs.append(mcq)
    if len(mcqs) > questions:
        issues.append("extra_mcqs")
        mcqs = mcqs[:questions]
    elif 0 < len(mcqs) < questions:
        issues.append("fewer_mcqs")
    if not mcqs:
        issues.append("no_mcqs")
    if unread:
        issues.append("unread_text")
    if finish_reason == "length":
        issues.insert(0, "truncated")
    status = "ok" if not issues else "partial" if mcqs else "none"
    truncated = finish_reason == "length" or "partial_json" in issues
    return McqParse(mcqs, status, tuple(dict.fromkeys(issues)), truncated, tuple(unread[:UNREAD_SHOWN]))
