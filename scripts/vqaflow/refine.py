"""Parsing raw model answers into ``{context, qas}`` (context_vqa) or ``qas`` (image_vqa, image_qa).

Free text is read line by line: each line is classified (section label, title, question,
answer, table row, separator, chatter or plain text, see :func:`classify`) and a small
state machine assembles the article and the pairs. A new answer shape is a new entry in
the label tables or one more case in :func:`classify`. JSON answers (fenced or bare, with
the usual key names) are read directly.

Parse status: ``ok`` when everything asked for was found and nothing was dropped
(context_vqa: an article and at least one pair; the others: at least one pair);
``partial`` when something usable was found but part is missing or an incomplete pair
(cut off by ``max_tokens``) was dropped; ``none`` when nothing usable was found.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

ARTICLE_LABELS = {
    "article", "wikipedia article", "wikipedia style article", "wikipedia-style article", "wiki article",
    "context", "passage", "background", "text", "wikipedia entry", "encyclopedia article",
    "wikipedia article text", "article text", "the article", "wikipedia", "wikipedia-style entry",
}
QA_LABELS = {
    "qa", "q&a", "q & a", "qas", "qa pairs", "q&a pairs", "question answer pairs", "question-answer pairs",
    "question and answer pairs", "questions and answers", "questions & answers", "questions",
    "question answer", "question-answer", "questions and answer pairs", "qa section", "pairs",
    "question/answer pairs", "q/a pairs", "q/a", "generated questions", "quiz", "faq",
    "questions and answers based on the article", "question-answer pairs based on the article",
}
TITLE_LABELS = {"title"}
ANSWERS_LABELS = {"answers", "answer key", "answers to the questions"}
QUESTION_KEYS = ("question", "q", "query", "prompt")
ANSWER_KEYS = ("answer", "a", "answers", "response")
CONTEXT_KEYS = ("context", "article", "wikipedia_article", "wikipedia", "passage", "text", "wiki_article",
                "wikipedia_style_article", "content", "background", "document")
PAIRS_KEYS = ("qas", "qa_pairs", "qa", "questions", "pairs", "question_answer_pairs",
              "questions_and_answers", "qa_list", "qapairs", "question_answers", "items")
CHATTER = re.compile(
    r"^(sure|certainly|of course|absolutely|okay|ok|here is|here's|here are|below is|below are|"
    r"i hope|hope this|let me know|feel free|i'd be happy|happy to help|i've written|i have written|"
    r"these questions|the following questions|based on the (?:image|article)[^.]*:$|"
    r"i'm sorry|i am sorry|i cannot|i can't|as an ai)\b",
    re.IGNORECASE,
)
EMPHASIS_PRESENT = re.compile(r"[*_`~]")
MARKUP = str.maketrans("", "", "*_`#~")
MARKUP_STARTS = frozenset("#*_|-•+>0123456789<`(")
UNDERSCORE = re.compile(r"(?<!\w)_(?=\S)|(?<=\S)_(?!\w)")
BULLET = re.compile(r"^\s*(?:[-*•+>]|\d+[.)]|\(\d+\)|#{1,6})\s+")
NUMBERED = re.compile(r"^\s*(?:[-*•+]\s*)?(?:\d+[.):]|\(\d+\))\s*")
LABEL_PREFIX = re.compile(
    r"^\s*(?:[-*•+]\s*)?(?:\d+[.)]\s*)?(?P<label>(?:question|answer|q|a)\s*\d*)\s*[.:)\-–—]\s*",
    re.IGNORECASE,
)
INLINE_ANSWER = re.compile(r"(?<=[?？.])\s*[-–—]?\s*(?:\*\*|__)?\s*(?:answer|a)\s*\d*\s*[:：]\s*(?:\*\*|__)?\s*",
                           re.IGNORECASE)
SEPARATOR = re.compile(r"[-*_=~]{3,}")
LABEL_MARK = re.compile(r":|：| [-–—]")
HEADING = re.compile(r"^\s*#{1,6}\s*")
LABEL_NUMBER = re.compile(r"^\d+[.)]\s*")
LABEL_REMARK = re.compile(r"\s*\(.*\)$")
INLINE_LABEL = re.compile(
    r"^\s*(?:#{1,6}\s*)?(?:\*\*|__|_|\*)?([^:*_]{1,60}?)(?:\*\*|__|_|\*)?\s*(?:[:：]|\s[-–—])"
    r"\s*(?:\*\*|__|_|\*)?\s*(.+)$"
)
WORD = re.compile(r"\w+")
ANSWER_PARTS = re.compile(r",|;|\band\b")
THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Parse:
    """What was read from one answer."""

    context: str | None
    qas: list[dict] = field(default_factory=list)
    status: str = "none"
    issues: tuple[str, ...] = ()
    truncated: bool = False


# -- text helpers ---------------------------------------------------------------------------------

def _clean(text: str) -> str:
    """Markdown emphasis removed, whitespace collapsed."""
    return " ".join(_plain(text).split())


def _plain(text: str) -> str:
    """Markdown emphasis removed: ``**``, ``__``, ``*``, backticks, ``~~`` and ``_`` at word edges."""
    if not EMPHASIS_PRESENT.search(text):
        return text
    text = text.replace("**", "").replace("__", "").replace("`", "").replace("~~", "").replace("*", "")
    return UNDERSCORE.sub("", text) if "_" in text else text


def _label_key(text: str) -> str:
    """A line reduced to compare with the label tables ("**Wikipedia Article:**" -> "wikipedia article")."""
    text = " ".join(text.translate(MARKUP).split()).rstrip(":： ")
    if text[:1].isdigit():
        text = LABEL_NUMBER.sub("", text)
    if text.endswith(")"):
        text = LABEL_REMARK.sub("", text)
    return text.lower().strip(" .-–—")


def _split_label(line: str) -> tuple[str | None, str]:
    """("article" | "qa" | "title" | None, rest of the line) for a section label line."""
    if len(line) <= 80 and "?" not in line:  # a label alone never asks
        kind = LABEL_KIND.get(_label_key(line))
        if kind is not None:
            return kind, ""
    match = INLINE_LABEL.match(line) if LABEL_MARK.search(line, 0, 90) else None
    if match and "?" not in match.group(1):
        kind = LABEL_KIND.get(_label_key(match.group(1)))
        if kind is not None:
            rest = match.group(2)
            return kind, "" if kind == "article" and _is_title(line, rest) else rest
    return None, line


def _is_title(line: str, rest: str) -> bool:
    """"**Wikipedia Article: The Eiffel Tower**": the label carries a title, not text."""
    rest = _clean(rest)
    bold = re.fullmatch(r"\s*(\*\*|__).*(\*\*|__)\s*", line) is not None
    return bold or (len(rest) < 80 and not re.search(r"[.!?]$", rest))


LABEL_KIND = {
    label: kind
    for kind, labels in (("article", ARTICLE_LABELS), ("qa", QA_LABELS), ("title", TITLE_LABELS),
                         ("answers", ANSWERS_LABELS))
    for label in labels
}


# -- line classification ---------------------------------------------------------------------------

class Line(NamedTuple):
    """A classified line: its kind, its text and, for a question, an answer on the same line."""

    kind: str  # blank separator label-article label-qa title heading question answer item table chatter text
    text: str = ""
    extra: str = ""


def _question_answer(text: str, bare: bool = False) -> tuple[str, str]:
    """Split "What is it? A: a tower" into its question and answer ("" when none);
    with ``bare``, also "What is it? - a tower" and "What is it? a tower"."""
    parts = INLINE_ANSWER.split(text, maxsplit=1)
    if len(parts) == 2 and parts[1].strip():
        return parts[0], parts[1]
    if bare and "?" in text:
        question, _, rest = text.rpartition("?")
        rest = rest.strip().lstrip("-–—:").strip()
        if rest:
            return question + "?", rest
    return text, ""


def _is_paragraph(stripped: str) -> bool:
    """A long line of prose: no markup, label, question shape or chatter at its start."""
    return (
        len(stripped) > 120
        and stripped[0] not in MARKUP_STARTS
        and not LABEL_MARK.search(stripped, 0, 60)
        and not stripped.endswith(("?", "？"))
        and not LABEL_PREFIX.match(stripped)
        and not CHATTER.match(stripped)
    )


@lru_cache(maxsize=4096)
def classify(raw: str) -> Line:
    """What one line of a free-text answer is (cached: labels and separators repeat)."""
    stripped = raw.strip()
    if not stripped:
        return Line("blank")
    if stripped[0] in "-*_=~" and SEPARATOR.fullmatch(stripped.replace(" ", "")):
        return Line("separator")
    if stripped.startswith("|") and stripped.count("|") >= 3:
        return Line("table", stripped)
    if _is_paragraph(stripped):
        return Line("text", stripped)  # the common case, decided early
    kind, rest = _split_label(stripped)
    if kind == "title":
        return Line("title")
    if kind is not None:
        return Line(f"label-{kind}", rest)
    plain = _plain(stripped).replace("：", ":").strip()
    heading = re.match(r"^#{1,6}\s*", plain)
    if heading:
        plain = plain[heading.end():]
    labelled = LABEL_PREFIX.match(plain)
    if labelled:
        body = plain[labelled.end():]
        if labelled.group("label").strip().lower().startswith("q"):
            return Line("question", *_question_answer(body))
        return Line("answer", body)
    bulleted = re.match(r"^[-•+]\s+", plain) or re.match(r"^\*\s+", stripped)
    numbered = NUMBERED.match(plain)
    if numbered or bulleted:
        body = plain[(numbered or bulleted).end():]
        question, answer = _question_answer(body, bare=True)
        if "?" in question or "？" in question:
            return Line("question", question, answer)
        return Line("item", body)
    if heading:
        return Line("question", *_question_answer(plain)) if plain.endswith("?") else Line("heading")
    if CHATTER.match(plain):
        return Line("chatter", stripped)
    if plain.endswith(("?", "？")) and len(plain) < 300 and not re.search(r"[.!]\s", plain):
        return Line("question", plain)
    return Line("text", stripped)


# -- assembly --------------------------------------------------------------------------------------

def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = THINK.sub("", text)
    if "<think>" in text.lower():  # reasoning never closed: nothing after it is an answer
        text = text[: text.lower().index("<think>")]
    return text.replace("</think>", "")


class _Reader:
    """The state machine: sections, the pending question, the pairs read so far."""

    def __init__(self, want_article: bool):
        self.want_article = want_article
        self.section = "start"
        self.article: list[str] = []
        self.qas: list[dict] = []
        self.question: str | None = None
        self.answer: list[str] = []
        self.dropped = False
        self.unanswered: list[str] = []
        self.blank_since_answer = False
        self.table_columns: tuple[int, int] | None = None

    def _finish(self) -> None:
        if self.question is not None:
            question, answer = _clean(self.question), _clean(" ".join(self.answer))
            if question and answer:
                self.qas.append({"question": question, "answer": answer})
            elif question:
                self.unanswered.append(question)
            else:
                self.dropped = True
        self.question, self.answer = None, []

    def _ask(self, question: str, answer: str) -> None:
        self._finish()
        self.section = "qa"
        self.question = question
        self.answer = [answer] if answer.strip() else []
        self.blank_since_answer = False

    def _table(self, row: str) -> None:
        cells = [_clean(c) for c in row.strip().strip("|").split("|")]
        if all(re.fullmatch(r":?-{2,}:?", c) or not c for c in cells):
            return
        lowered = [c.lower() for c in cells]
        if any(c in ("question", "q", "questions") for c in lowered):
            q = next(i for i, c in enumerate(lowered) if c in ("question", "q", "questions"))
            a = next((i for i, c in enumerate(lowered) if c in ("answer", "a", "answers")), q + 1)
            self.table_columns = (q, a)
            return
        q, a = self.table_columns or ((1, 2) if len(cells) >= 3 and cells[0].rstrip(".").isdigit() else (0, 1))
        if len(cells) > max(q, a):
            self._ask(cells[q], cells[a])
            self._finish()

    def feed(self, line: Line) -> None:
        kind = line.kind
        if kind in ("blank", "separator"):
            if self.question is not None and self.answer:
                self.blank_since_answer = True
            if self.section == "article" and self.article and self.article[-1] != "":
                self.article.append("")
            return
        if kind == "label-article":
            self._finish()
            self.section = "article"
            if line.text:
                self.article.append(line.text)
            return
        if kind == "label-answers":
            self._finish()
            self.section = "answers"
            return
        if self.section == "answers":
            if self.unanswered and kind in ("item", "text", "answer", "question"):
                answer = _clean(line.text + (" " + line.extra if line.extra else ""))
                self.qas.append({"question": self.unanswered.pop(0), "answer": answer})
            return
        if kind == "label-qa":
            self._finish()
            self.section = "qa"
            if line.text:
                self.feed(classify(line.text))
            return
        if kind in ("title", "heading"):
            return
        if kind == "table":
            self._table(line.text)
            return
        if kind == "question":
            self._ask(line.text, line.extra)
            return
        if kind == "answer" and self.question is not None:
            self.answer.append(line.text)
            return
        if self.section == "qa":
            self._qa_text(line)
            return
        if kind == "chatter" and (self.section == "start" or line.text.rstrip().endswith(":")):
            return
        if self.want_article and (self.section in ("start", "article")):
            if self.section == "start" and (
                re.fullmatch(r"(\*\*|__).+(\*\*|__)", line.text.strip()) or line.text.rstrip().endswith(":")
            ):
                return  # a bold title or an introduction above the article
            self.section = "article"
            self.article.append(line.text)

    def _qa_text(self, line: Line) -> None:
        """Plain text inside the QA section: an answer on its own line, or chatter."""
        if line.kind == "chatter" or self.question is None:
            return
        text = re.sub(r"^\s*[-*•+>]\s*", "", line.text)
        if not self.answer:
            self.answer = [text]
        elif not self.blank_since_answer and line.kind in ("text", "item"):
            self.answer.append(text)

    def result(self) -> tuple[str, list[dict], bool]:
        self._finish()
        return _clean(" ".join(self.article)), self.qas, self.dropped or bool(self.unanswered)


def _read(text: str, want_article: bool) -> tuple[str, list[dict], bool]:
    reader = _Reader(want_article)
    for raw in _normalise(text).split("\n"):
        reader.feed(classify(raw))
    return reader.result()


# -- JSON answers ----------------------------------------------------------------------------------

def _json_candidates(text: str) -> list[str]:
    candidates = [m.group(1) for m in FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    start, end = text.find("["), text.rfind("]")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    return candidates


def _pick(mapping: dict, names: tuple[str, ...]):
    lowered = {str(k).lower().replace(" ", "_").replace("-", "_"): v for k, v in mapping.items()}
    return next((lowered[name] for name in names if name in lowered), None)


def _json_pairs(items) -> list[dict]:
    pairs = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            question, answer = _pick(item, QUESTION_KEYS), _pick(item, ANSWER_KEYS)
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            question, answer = item
        else:
            continue
        if isinstance(answer, list):
            answer = ", ".join(str(a) for a in answer)
        if question is not None and answer is not None and _clean(str(question)) and _clean(str(answer)):
            pairs.append({"question": _clean(str(question)), "answer": _clean(str(answer))})
    return pairs


def _from_json(text: str) -> tuple[str, list[dict]] | None:
    """(context, pairs) from a JSON answer, or None when the answer holds no usable JSON."""
    for candidate in _json_candidates(_normalise(text)):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, list):
            pairs = _json_pairs(data)
            if pairs:
                return "", pairs
            continue
        if not isinstance(data, dict):
            continue
        context = _pick(data, CONTEXT_KEYS)
        pairs = _json_pairs(_pick(data, PAIRS_KEYS))
        if not pairs and _pick(data, QUESTION_KEYS) is not None:
            pairs = _json_pairs([data])
        if pairs or isinstance(context, str):
            return _clean(context) if isinstance(context, str) else "", pairs
    return None


# -- public API ------------------------------------------------------------------------------------

def _status(has_context: bool, pairs: list[dict], dropped: bool, want_article: bool) -> str:
    complete = bool(pairs) and (has_context or not want_article)
    if complete and not dropped:
        return "ok"
    if pairs or (want_article and has_context):
        return "partial"
    return "none"


def parse_context_vqa(text: str) -> Parse:
    """Read a ContextVQA answer: the article as ``context`` and its question-answer pairs."""
    parsed = _from_json(text) if "{" in text else None
    if parsed is not None and parsed[1]:
        context, pairs = parsed
        return Parse(context, pairs, _status(bool(context), pairs, False, True))
    context, pairs, dropped = _read(text, want_article=True)
    return Parse(context, pairs, _status(bool(context), pairs, dropped, True))


def parse_qa_pairs(text: str) -> Parse:
    """Read the question-answer pairs of an image_vqa or image_qa answer."""
    parsed = _from_json(text) if ("{" in text or "[" in text) else None
    if parsed is not None and parsed[1]:
        return Parse(None, parsed[1], "ok")
    _, pairs, dropped = _read(text, want_article=False)
    return Parse(None, pairs, _status(False, pairs, dropped, False))


def parse_structured(text: str, pipeline: str) -> Parse:
    """Read an answer requested under :func:`answer_schema`; free text falls back to the
    free-text parsers (a backend may ignore the schema)."""
    return parse_context_vqa(text) if pipeline == "context_vqa" else parse_qa_pairs(text)


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


def answer_schema(pipeline: str) -> dict:
    """The strict JSON schema requested with ``structured_output: true``."""
    pair = {
        "type": "object",
        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
        "required": ["question", "answer"],
        "additionalProperties": False,
    }
    properties: dict = {"qas": {"type": "array", "items": pair}}
    if pipeline == "context_vqa":
        properties = {"context": {"type": "string"}, **properties}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def parse_answer(text: str, want_article: bool, finish_reason: str | None = None) -> Parse:
    """Read an answer: the article (when wanted) and the pairs."""
    parsed = parse_context_vqa(text) if want_article else parse_qa_pairs(text)
    truncated = finish_reason == "length"
    status = "partial" if truncated and parsed.status == "ok" else parsed.status
    return Parse(parsed.context, parsed.qas, status, ("truncated",) if truncated else (), truncated)


def read_json(text: str) -> object | None:
    """The first JSON object or array in an answer (fenced or bare), else None."""
    for candidate in _json_candidates(_normalise(text)):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None
