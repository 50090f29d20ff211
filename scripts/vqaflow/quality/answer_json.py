"""JSON answers: objects and arrays found in an answer (fenced, bare, after chatter), read
whole, cut off by ``max_tokens`` (the complete part is kept) or malformed (trailing commas,
Python literals), and the article and pairs they hold (English or Chinese keys)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import NamedTuple

import jiter

from .answer_lines import clean, without_citation_marks
from .text import key_name, pick

QUESTION_KEYS = ("question", "q", "query", "prompt", "问题", "问", "提问")
ANSWER_KEYS = ("answer", "a", "ans", "response", "reply", "答案", "答", "回答")
CONTEXT_KEYS = ("context", "article", "wikipedia_article", "wikipedia", "passage", "text", "wiki_article",
                "wikipedia_style_article", "content", "background", "document", "文章", "维基百科文章",
                "背景", "上下文", "正文", "内容")
CONTEXT_ROOTS = ("article", "context", "passage", "wiki", "文章", "背景", "上下文", "正文")
ARTICLE_BODY_KEYS = ("text", "content", "body", "article", "paragraphs", "sections", "正文", "内容", "段落")
TITLE_KEYS = ("title", "heading", "headline", "标题", "题目")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# keys whose values say something about a pair, not the pair: metadata and remarks (as the
# free-text reader's remarks, ``Difficulty: easy``, ``Explanation: …``)
SIDE_KEYS = frozenset({
    "id", "idx", "index", "no", "number", "num", "type", "category", "difficulty", "level", "tag", "tags", "topic",
    "skill", "kind", "question_type", "answer_type", "qtype", "confidence", "score", "explanation", "evidence",
    "reason", "reasoning", "rationale", "source", "sources", "note", "notes", "hint", "编号", "序号", "类型",
    "类别", "难度", "解释", "解析", "理由", "说明", "来源", "依据", "提示"})
JSON_STARTS = re.compile(r"[{\[]")
TRAILING_COMMA = re.compile(r",(\s*[}\]])")
JSON_TRIES = 8  # "{" or "[" positions tried before giving up on JSON
decode_json = json.JSONDecoder().raw_decode


def json_values(text: str) -> Iterator[tuple[object, int, int, bool]]:
    """(value, start, end, complete) for each JSON object or array found, the first ones first."""
    malformed = -1  # where a value that could not be read starts
    for tries, match in enumerate(JSON_STARTS.finditer(text)):
        if tries == JSON_TRIES:
            return
        start = match.start()
        try:
            value, end = decode_json(text, start)
        except ValueError:
            pass
        else:  # inside a value that could not be read, it is only a part of the answer
            yield value, start, end, malformed < 0 or _closed(text[malformed:start])
            continue
        rest = text[start:].encode()
        try:
            jiter.from_json(rest)
        except ValueError as error:
            if "EOF" in str(error):  # cut off, not malformed: the complete part is usable
                yield jiter.from_json(rest, partial_mode="on"), start, len(text), False
                return
        lenient = _decode_leniently(text[start:])
        if lenient is not None:
            yield lenient[0], start, start + lenient[1], True
        elif malformed < 0:
            malformed = start


def _closed(text: str) -> bool:
    """Whether the value opening ``text`` is closed within it (``[citation needed] {…}``)."""
    return ("]" if text[0] == "[" else "}") in text


def _decode_leniently(text: str) -> tuple[object, int] | None:
    """A malformed JSON value read anyway (trailing commas dropped, or a Python literal), and
    where it ends in ``text``."""
    commas = [match.start() for match in TRAILING_COMMA.finditer(text)]
    try:
        value, end = decode_json(TRAILING_COMMA.sub(r"\1", text))
    except ValueError:
        pass
    else:
        return value, end + sum(1 for at, comma in enumerate(commas) if comma - at < end)
    end = max(text.rfind("}"), text.rfind("]")) + 1
    if "'" not in text or not end:
        return None
    try:
        value = ast.literal_eval(text[:end])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return (value, end) if isinstance(value, (dict, list)) else None


def _text(value: object) -> str:
    """A JSON value as text: lists joined by commas, an article object by its text."""
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return _text(pick(value, ARTICLE_BODY_KEYS) or "")
    return "" if value is None else clean(str(value))


def _article(value: object, title: object = None) -> str:
    """An article given as JSON as text: a string keeps its paragraphs, a list is one paragraph
    per item, an object is its title and its body (``text``, ``paragraphs``, ``sections`` …);
    ``title`` (a sibling key of the article) opens it. Paragraphs are separated by a blank line."""
    if isinstance(value, dict):
        value, title = pick(value, ARTICLE_BODY_KEYS), pick(value, TITLE_KEYS) or title
    parts = [title] if isinstance(title, str) else []
    parts += value if isinstance(value, list) else [value]
    paragraphs = []
    for part in parts:
        if isinstance(part, (dict, list)):
            paragraphs.append(_article(part))
        elif part is not None:
            paragraphs += [without_citation_marks(clean(paragraph)) for paragraph in PARAGRAPH_BREAK.split(str(part))]
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def _json_pairs(items: object, cut: bool = False) -> tuple[list[dict], int]:
    """The complete pairs of a JSON list and how many items were not complete pairs; when the
    JSON was ``cut``, the last item counts only with two strings (a number or list may be cut)."""
    items = items if isinstance(items, list) else []
    pairs, incomplete = [], 0
    for position, item in enumerate(items, 1):
        if isinstance(item, dict):
            question, answer = _question_of(item), _answer_of(item)
        elif isinstance(item, list) and len(item) == 2:
            question, answer = item
        else:
            continue
        whole = not cut or position < len(items) or (isinstance(question, str) and isinstance(answer, str))
        question, answer = _text(question), _text(answer)
        if question and answer and whole:
            pairs.append({"question": question, "answer": answer})
        else:
            incomplete += 1
    return pairs, incomplete


def _pairs_value(data: dict) -> object:
    """The first list of pairs in a JSON object (question objects or two-string lists)."""
    for value in data.values():
        if isinstance(value, list) and value and _is_pair(value[0]):
            return value
    return None


def _context_like(data: dict) -> object:
    """The value of a key that names an article in other words ("article_text", "wiki_context")."""
    return next((value for key, value in data.items()
                 if isinstance(value, (str, dict)) and any(root in key_name(key) for root in CONTEXT_ROOTS)), None)


def _zipped(data: dict) -> list | None:
    """Pairs given as two lists: ``{"questions": [...], "answers": [...]}``."""
    questions, answers = pick(data, ("questions", "问题")), pick(data, ("answers", "答案"))
    if isinstance(questions, list) and isinstance(answers, list) and len(questions) == len(answers):
        return [list(pair) for pair in zip(questions, answers)]
    return None


def _named(item: dict, keys: tuple[str, ...], root: str) -> object:
    """The value of one of ``keys``, else the text of the one key naming ``root`` in other words
    (``question_text``, ``answer_en``)."""
    value = pick(item, keys)
    if value is None:
        named = [v for key, v in item.items() if root in key_name(key) and isinstance(v, str)]
        value = named[0] if len(named) == 1 else None
    return value


def _question_of(item: dict) -> object:
    return _named(item, QUESTION_KEYS, "question")


def _answer_of(item: dict) -> object:
    return _named(item, ANSWER_KEYS, "answer")


def _is_pair(item: object) -> bool:
    if isinstance(item, dict):
        return _question_of(item) is not None
    return isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)


class JsonRead(NamedTuple):
    """What a JSON answer gave, and where its JSON value is in the answer."""

    context: str
    qas: list[dict]
    issues: list[str]
    start: int
    end: int
    value: object = None


def json_strings(value: object) -> list[str]:
    """The strings and numbers of a JSON value, in order: what a JSON answer says (its syntax,
    keys, booleans and nulls are markup; the values of :data:`SIDE_KEYS`, a pair's metadata and
    remarks, are labels)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, dict):
        value = [item for key, item in value.items() if key_name(key) not in SIDE_KEYS]
    if isinstance(value, (list, tuple, set)):
        return [text for item in value for text in json_strings(item)]
    return []


def pairs_from_json(text: str) -> JsonRead | None:
    """The context, pairs and issues of a JSON answer, with where its JSON value is, or None."""
    cut = None
    for data, start, end, complete in json_values(text):
        cut = cut if complete else start
        context = ""
        if isinstance(data, dict):
            context = _article(pick(data, CONTEXT_KEYS) or _context_like(data), pick(data, TITLE_KEYS))
            items = _pairs_value(data)
            if items is None and _question_of(data) is not None:
                items = [data]
            if items is None:
                items = _zipped(data)
        else:
            items = data
        pairs, incomplete = _json_pairs(items, cut=not complete)
        if pairs or context:
            issues = [] if complete else ["partial_json"]
            if incomplete:
                issues.append("unanswered_question" if complete else "incomplete_pair")
            return JsonRead(context, pairs, issues, start, end, data)
    return None if cut is None else JsonRead("", [], ["partial_json"], cut, cut)
