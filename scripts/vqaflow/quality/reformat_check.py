"""Verifying a reformat: the model segments a raw answer into JSON; the code decides whether
that JSON is a copy of the raw answer.

A reformat is accepted only when all of this holds (else the reason is returned):

- ``cut_off``: the reformat answer was not cut off (``finish_reason`` is not ``length``);
- ``not_json``: it is one JSON object (a fence around it is allowed);
- ``not_schema``: with ``qas``, a list of ``{question, answer}`` strings, and ``context``, a
  string, when an article is wanted;
- ``no_pairs`` / ``no_article`` / ``empty_field``: at least one pair, an article when one is
  wanted, no empty question or answer;
- ``invented``: the article (each of its lines) and every question and answer are found in
  the raw answer as the parser accounts for it (:func:`.parse.accounted_text`: reasoning
  removed, a JSON answer by its strings, one a line, without a pair's metadata and remarks),
  normalised by :func:`.text.normalise` (case, whitespace, quotes and other punctuation,
  markdown markers), each at a place of its own;
- ``unread_text`` / ``left_out``: between the first and the last pair, every line of the raw
  answer that holds a copied field holds nothing else but labels (``Question``, ``A2``,
  ``答案``), numbering, markup and a remark closing an answer (``— the article says …``,
  :func:`.text.split_remark`) (``unread_text``: e.g. a pair written in prose, options
  around an answer, a refusal beside a question); a line between pairs that holds no field
  may be a heading or a remark (``Explanation: …``), never a question (``left_out``: a
  question the reformat left out) nor an alternative offered (``Alternatively:``,
  ``unread_text``). Chatter before the pairs (after the article too) and after them is free,
  but a line there that asks a question and holds no field is ``left_out`` too (a question the
  answer never answered, left out of the copy; after the pairs of an answer that was cut off,
  it is the cut pair);
- ``unmarked_split``: two answers, or an answer and the next question, are copied from one
  run of text (one line, nothing but punctuation between them, e.g. one comma list, ``A.
  three people. what are they wearing? …``): the boundary is the model's guess;
- ``fewer_pairs``: it holds at least as many pairs as the parser read from the same answer,
  leaving out those whose question is text of the copied article (a reformat never loses pairs);
- ``not_clean``: the parser, reading the reformat's JSON, finds it ``ok``: the fields pass the
  same self-checks as a parsed answer (no labels left in questions or answers, every question
  a question, no chatter in the article); the parser's reading is the record's parse.

An accepted reformat of an answer that was itself cut off (``raw_truncated``) stays
``partial`` (``truncated``): its last pair is dropped when it runs to the end of the raw answer
(or has an empty question or answer).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .answer_lines import ANSWER_ROOTS, QA_WORDS, QUESTION_ROOTS, chatty, offers_alternative
from .parse import Parse, accounted_text, parse_answer
from .text import CJK_LETTERS, closing_aside, contains, is_question, normalise, split_remark

_TOKEN = re.compile(rf"[{CJK_LETTERS}]|[^{CJK_LETTERS}\s]+")
_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_NUMBERING = re.compile(r"(?:q|a|question|answer|no|pair)?\d{1,3}|[ivx]{1,4}|[一二三四五六七八九十]")
# what may stand between pairs besides the pairs: label words and the characters of Chinese labels
_LABEL_TOKENS = frozenset(
    {root for root in QUESTION_ROOTS | ANSWER_ROOTS | QA_WORDS if root.isascii() and " " not in root}
    | {"answers", "pair", "br", "b", "strong", "em", "li", "p", "ul", "ol", "hr", "u"}
    | {char for root in QUESTION_ROOTS | ANSWER_ROOTS if not root.isascii() for char in root}
    | set("第题")
)
SHOWN = 60  # characters of a rejected text shown in the reason


@dataclass(frozen=True)
class Verdict:
    """A reformat checked: its parse when accepted, else None and why not."""

    parse: Parse | None
    reason: str | None = None


def tokens(text: str) -> list[str]:
    """``text`` as :func:`.text.normalise` reads it, one token a word or CJK character."""
    return _TOKEN.findall(normalise(text))


def raw_tokens(raw: str) -> tuple[list[str], list[int], list[str]]:
    """The raw answer's tokens, the line each comes from, and its lines."""
    lines = raw.splitlines()
    found, line_of = [], []
    for number, line in enumerate(lines):
        line_tokens = tokens(line)
        found += line_tokens
        line_of += [number] * len(line_tokens)
    return found, line_of, lines


def _find(needle: list[str], hay: list[str], taken: list[bool], start: int = 0) -> int | None:
    """Where ``needle`` occurs in ``hay`` on tokens not ``taken``, first at or after ``start``,
    else anywhere; None when nowhere."""
    n = len(needle)
    for begin, end in ((start, len(hay)), (0, start)):
        for at in range(begin, min(end, len(hay) - n + 1)):
            if hay[at:at + n] == needle and not any(taken[at:at + n]):
                return at
    return None


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def read_reply(reply: str) -> object | None:
    """The reformat answer's JSON value (a fence around it allowed), else None."""
    text = reply.strip()
    fenced = _FENCE.match(text)
    try:
        return json.loads(fenced.group(1) if fenced else text)
    except (json.JSONDecodeError, ValueError):
        return None


def _fields(value: object, want_article: bool, raw_truncated: bool) -> tuple[str | None, list[dict]] | str:
    """The article and pairs of a reformat's JSON, stripped, or the reason they are unusable
    (the last pair of a cut-off answer may be empty: it is dropped)."""
    if not isinstance(value, dict) or not isinstance(value.get("qas"), list):
        return "not_schema"
    context = value.get("context") if want_article else None
    if want_article and not isinstance(context, str):
        return "not_schema"
    qas = []
    for item in value["qas"]:
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) \
                or not isinstance(item.get("answer"), str):
            return "not_schema"
        qas.append({"question": item["question"].strip(), "answer": item["answer"].strip()})
    if raw_truncated and qas and not (qas[-1]["question"] and qas[-1]["answer"]):
        qas.pop()
    if not qas:
        return "no_pairs"
    if want_article and not context.strip():
        return "no_article"
    if any(not qa["question"] or not qa["answer"] for qa in qas):
        return "empty_field"
    return context, qas


def _locate(raw: list[str], context: str | None, qas: list[dict]) -> tuple[list[tuple[int, int]], list[bool]] | str:
    """Each pair's question and answer spans in the raw tokens (the article's lines first,
    each at a place of its own), and which tokens are taken; or why a field is not there."""
    taken = [False] * len(raw)

    def claim(text: str, start: int) -> tuple[int, int] | str:
        needle = tokens(text)
        at = _find(needle, raw, taken, start) if needle else None
        if at is None:
            return f"invented: {_shown(text)}"
        for i in range(at, at + len(needle)):
            taken[i] = True
        return at, at + len(needle)

    for line in (context or "").splitlines():
        if line.strip() and isinstance(span := claim(line, 0), str):
            return span
    spans, end = [], 0
    for qa in qas:
        for text in (qa["question"], qa["answer"]):
            span = claim(text, end)
            if isinstance(span, str):
                return span
            spans.append(span)
            end = span[1]
    return spans, taken


def _unread(raw: list[str], line_of: list[int], lines: list[str], spans: list[tuple[int, int]],
            taken: list[bool]) -> str | None:
    """Why the text between the first and the last pair is not only the pairs, else None."""
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    by_line: dict[int, list[int]] = {}
    for i in range(first, last):
        by_line.setdefault(line_of[i], []).append(i)
    for number, positions in by_line.items():
        if not any(taken[i] for i in positions) and line_of.count(number) == len(positions):
            if is_question(lines[number]):
                return f"left_out: {_shown(lines[number])}"
            if offers_alternative(lines[number]):
                return f"unread_text: {_shown(lines[number])}"
            continue  # a heading or a remark between pairs
        left = [raw[i] for i in positions if not taken[i]]
        if any(token not in _LABEL_TOKENS and not _NUMBERING.fullmatch(token) for token in left) \
                and not _closing_remark(raw, positions, taken, lines[number]):
            return f"unread_text: {_shown(' '.join(left))}"
    return None


def _closing_remark(raw: list[str], positions: list[int], taken: list[bool], line: str) -> bool:
    """Whether what a line holds after its last copied field is the remark that closes an answer
    (:func:`.text.split_remark`: a citation of the source, a justification after a dash), or an
    aside the copy left out (:func:`.text.closing_aside`), with only labels before it."""
    last = max(i for i in positions if taken[i])
    if any(not taken[i] and raw[i] not in _LABEL_TOKENS and not _NUMBERING.fullmatch(raw[i])
           for i in positions if i < last):
        return False
    tail = [raw[i] for i in positions if i > last]
    return bool(tail) and tail in (tokens(split_remark(line)[1]), tokens(closing_aside(line)))


def _left_out_around(line_of: list[int], lines: list[str], spans: list[tuple[int, int]],
                     taken: list[bool], raw_truncated: bool) -> str | None:
    """A question on a line of its own after the first field, outside the pairs (after the
    last one, unless the answer was cut off there, or between the article and the first), that
    the copy left out."""
    first_line = line_of[taken.index(True)]
    inside = range(line_of[min(s for s, _ in spans)], line_of[max(e for _, e in spans) - 1] + 1)
    holding = {line_of[i] for i, was in enumerate(taken) if was}
    for number in range(first_line, inside.stop if raw_truncated else len(lines)):
        line = lines[number]
        if number not in inside and number not in holding and is_question(line) and not chatty(line.strip()):
            return f"left_out: {_shown(line)}"
    return None


def _unmarked_split(line_of: list[int], lines: list[str], spans: list[tuple[int, int]]) -> str | None:
    """Two answers, or an answer and the next question, copied from one run of text (one line,
    nothing but punctuation between them): where one ends and the next begins is the model's
    guess, not the writer's."""
    answers = sorted(spans[1::2])
    follows = list(zip(answers, answers[1:])) + list(zip(spans[1::2], spans[2::2]))
    for (_, end), (start, _) in follows:
        if end == start and line_of[end - 1] == line_of[start]:
            return f"unmarked_split: {_shown(lines[line_of[start]])}"
    return None


def _pairs_outside(qas: list[dict], context: str | None) -> list[dict]:
    """The parser's pairs whose question is not text of the copied article (a title that reads
    as a question is no pair the copy lost)."""
    article = normalise(context or "")
    return [qa for qa in qas if not (article and contains(normalise(qa["question"]), article))]


def check_reformat(raw: str, reply: str, finish_reason: str | None, want_article: bool,
                   parsed: Parse, raw_truncated: bool = False) -> Verdict:
    """Whether ``reply`` (a reformat answer) copies the raw answer ``raw``, whose own parse is
    ``parsed``; see the module docstring."""
    if finish_reason == "length":
        return Verdict(None, "cut_off")
    value = read_reply(reply)
    if value is None:
        return Verdict(None, "not_json")
    fields = _fields(value, want_article, raw_truncated)
    if isinstance(fields, str):
        return Verdict(None, fields)
    context, qas = fields
    words, line_of, lines = raw_tokens(accounted_text(raw))
    located = _locate(words, context, qas)
    if isinstance(located, str):
        return Verdict(None, located)
    spans, taken = located
    unread = (_unread(words, line_of, lines, spans, taken) or _left_out_around(line_of, lines, spans, taken, raw_truncated)
              or _unmarked_split(line_of, lines, spans))
    if unread is not None:
        return Verdict(None, unread)
    if raw_truncated and spans[-1][1] == len(words):  # the last answer ran into the cut
        qas = qas[:-1]
    if not qas:
        return Verdict(None, "no_pairs")
    if len(qas) < len(_pairs_outside(parsed.qas, context)):
        return Verdict(None, "fewer_pairs")
    copied = {"context": context, "qas": qas} if want_article else {"qas": qas}
    read = parse_answer(json.dumps(copied, ensure_ascii=False), want_article)
    if read.status != "ok":
        return Verdict(None, f"not_clean: {', '.join(read.issues)}")
    if raw_truncated:
        return Verdict(Parse(read.context, read.qas, "partial", ("truncated",), True))
    return Verdict(read)
