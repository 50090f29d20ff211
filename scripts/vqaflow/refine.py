"""Parsing raw model answers into an article (when asked for) and question-answer pairs.

:func:`parse_answer` reads JSON answers (fenced or bare, complete or cut off by ``max_tokens``,
English or Chinese keys) with :func:`read_json`, and free text line by line: each line is
classified (:func:`classify_line`) by its *structure* - a label (a short word from a small
vocabulary of label roots, optionally bulleted, numbered or emphasised, followed by ``:``,
``：``, ``-``, ``)`` or ``.``, or alone on its line), a prose section header ending with a
colon, a question shape, a table row, chatter or plain text - and a small state machine
assembles the article and the pairs. Article lines and paragraphs are joined by a single space (by nothing between two CJK
characters).

Status is honest: ``ok`` only when pairs were found (and an article, when wanted) and no
self-check raised an issue; ``none`` when nothing usable was found; else ``partial``.
``truncated`` is ``finish_reason == "length"``, or JSON cut off (``partial_json``), or a last
pair cut off (``incomplete_pair``).
Issue codes:

- ``truncated``: the backend stopped at ``max_tokens`` (``finish_reason == "length"``); the
  last pair of a free-text answer, when the text ends in its answer, is dropped as cut.
- ``no_article``: an article was wanted and none was found.
- ``no_pairs``: no question-answer pair was found.
- ``article_chatter``: the article starts with the model's chatter or a label, holds a
  question or answer label, or ends with chatter.
- ``label_in_question`` / ``label_in_answer``: a question or answer still starts with a label
  (``答案：…``, ``Ans: …``, ``Question one: …``).
- ``empty_answer``: an answer that is empty or only a label (``Ans``); the pair is dropped.
- ``not_a_question``: a question with neither a question mark nor an interrogative or
  imperative opening (``what``, ``is``, ``name``, ``list``, ``吗``, ``什么``, ``请`` …).
- ``incomplete_pair``: a pair cut off at the end of the text or of cut-off JSON (dropped).
- ``unanswered_question``: a question without an answer before the end, or a JSON item
  without both question and answer (dropped).
- ``orphan_answer``: an answer with no question before it (dropped).
- ``partial_json``: the JSON was cut off or malformed around what was read; only complete
  pairs are kept.
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import jiter

# label roots and JSON keys, English and Chinese
QUESTION_ROOTS = frozenset({"question", "q", "ques", "query", "user", "human", "问题", "问", "提问", "题目"})
ANSWER_ROOTS = frozenset({"answer", "a", "ans", "response", "reply", "assistant", "gpt", "答案", "答", "回答",
                          "解答"})
ANSWERS_SECTION = frozenset({"answers", "answer key", "answers key", "答案如下", "参考答案"})
LABEL_WORDS = frozenset(root for root in QUESTION_ROOTS | ANSWER_ROOTS if root.isascii())
LABEL_INITIALS = frozenset(word[0] for word in LABEL_WORDS)
LABEL_FIRST_CHARS = frozenset("问答提回解题[【(（-•+>*#0123456789")
FIRST_WORD = re.compile(r"[A-Za-z]+")
LOOSE_LABEL = re.compile(  # a label word and a colon a few words later ("Question one: …")
    r"[\[【(（*_\s]*(?:question|ques|query|answer|ans|response|q|a|问题|问|答案|答|回答)\b[^:：?？\n]{0,12}[:：]",
    re.IGNORECASE)
TITLE_ROOTS = frozenset({"title", "标题", "题目名称"})
ARTICLE_HEADS = frozenset({"article", "context", "passage", "text", "entry", "background", "document",
                           "content", "wikipedia", "wiki", "description", "summary", "overview", "essay"})
ARTICLE_HEADS_ZH = ("文章", "背景", "上下文", "正文", "短文", "段落", "百科", "条目", "内容", "描述", "介绍", "简介")
QA_WORDS = frozenset({"qa", "q&a", "qas", "q/a", "faq", "quiz", "pairs", "questions"})
QUESTION_KEYS = ("question", "q", "query", "prompt", "问题", "问", "提问")
ANSWER_KEYS = ("answer", "a", "ans", "response", "答案", "答", "回答")
CONTEXT_KEYS = ("context", "article", "wikipedia_article", "wikipedia", "passage", "text", "wiki_article",
                "wikipedia_style_article", "content", "background", "document", "文章", "维基百科文章",
                "背景", "上下文", "正文", "内容")
CONTEXT_ROOTS = ("article", "context", "passage", "wiki", "文章", "背景", "上下文", "正文")
ARTICLE_BODY_KEYS = ("text", "content", "body", "article", "正文", "内容")

# line structure
LIST_PREFIX = re.compile(  # a bullet, a list number, an opening bracket
    r"(?:[-•+>]\s*)?(?:[(（]?(?:\d{1,3}|[一二三四五六七八九十]{1,3})[.)、）:：]\s*)?[\[【]?")
LABEL_SEP = re.compile(r"[:：)）.\]】]|[-–—](?!\S)")
LABEL_TAIL = re.compile(  # a label's number, remark or closing bracket ("Question 3 (easy)]")
    r"\s*(?:(?:#|no\.?\s*)?(?:\d{1,3}|[一二三四五六七八九十]{1,3}|one|two|three|four|five|six|seven|eight|nine|ten))?"
    r"\s*(?:[(（][^)）]{0,30}[)）]?)?\s*$",
    re.IGNORECASE)
INLINE_ANSWER = re.compile(
    r"(?<=[?？.。!！])\s*(?:[-–—|｜]\s*)?[(（]?\s*(?:answer|ans|a|答案|答|回答)\s*(?:\d*\s*[:：]|\d+\.)\s*",
    re.IGNORECASE)
PAREN_ANSWER = re.compile(r"\s*[(（]\s*(?:answer|ans|a|答案|答)\s*[:：]\s*(.+?)\s*[)）]\s*$", re.IGNORECASE)
DASH_ANSWER = re.compile(r"(?<=[?？])\s*(?:[-–—]+>?|→|=>|[:：])\s*")
CHATTER = re.compile(
    r"(?:sure|certainly|of course|absolutely|okay|ok|alright|great|here is|here's|here are|below is|"
    r"below are|i hope|hope this|let me|let's|i'll|i will|i've|i have|i'd|i am going|i'm going|feel free|"
    r"happy to|glad to|these questions|as an ai|i'm sorry|i am sorry|i cannot|i can't|"
    r"note:|note that|please note|好的|当然|以下是|下面是|这是|希望|如果您|根据您的|我将|让我|我会)(?:\b|(?<=[^\x00-\x7f]))",
    re.IGNORECASE,
)
CHATTER_WORDS = frozenset({"sure", "certainly", "of", "absolutely", "okay", "ok", "alright", "great", "here",
                           "below", "i", "hope", "let", "feel", "happy", "glad", "these", "as", "note", "please"})
CHATTER_INITIALS = frozenset(word[0] for word in CHATTER_WORDS)
CHATTER_INSIDE = ("let me know", "hope this helps", "feel free to", "如有", "希望这些")
REMARK = re.compile(r"(?:explanation|reason|reasoning|rationale|evidence|source|note|difficulty|type|"
                    r"category|hint|解释|解析|理由|说明|提示|难度|类型)\b\s*[:：]", re.IGNORECASE)
QA_PHRASE = re.compile(r"question[- ]answer|questions? and answers?|\bq\s*&\s*a\b|\bqa pairs|问答")
LABEL_INSIDE = re.compile(r"\b(?:[Qq]uestion|[Aa]nswer|Q|A)\s*\d*\s*[:：]\s|(?:问题|答案|问|答)\s*\d*\s*[:：]")
INTERROGATIVE = re.compile(
    r"(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|am|do|does|did|can|could|should|"
    r"would|will|shall|has|have|had|may|might|must|name|list|identify|describe|explain|give|state|count|"
    r"tell|find|mention|provide|determine|estimate|compare|specify|according to)\b",
    re.IGNORECASE,
)
INTERROGATIVE_ZH = re.compile(r"吗|呢|什么|哪|谁|几|多少|怎么|怎样|如何|为什么|为何|是否|是不是|请|列出|说出|描述|指出")
NUMBERED = re.compile(r"(?:[(（]?\d{1,3}[.)、）]|[一二三四五六七八九十]{1,3}、)\s*")
BULLET = re.compile(r"(?:[-•+>]|\*(?=\s))\s*")
HEADING = re.compile(r"#{1,6}\s*")
SEPARATOR = re.compile(r"[-*_=~]{3,}")
EMPHASIS_PRESENT = re.compile(r"[*_`~]")
UNDERSCORE = re.compile(r"(?<!\w)_(?=\S)|(?<=\S)_(?!\w)")
MARKUP_STARTS = frozenset("#*_|-•+>0123456789<`([（【")
TABLE_RULE = re.compile(r":?-{2,}:?")
SPECIAL_TOKEN = re.compile(  # <|im_start|>assistant, <|eot_id|>, </s>
    r"<\|start_header_id\|>\w*<\|end_header_id\|>|<\|im_start\|>\w*|<\|[\w-]{1,30}\|>|</?s>")
THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
CJK = "\u2e80"  # CJK scripts and full-width punctuation start here
WORD = re.compile(r"\w+")
ANSWER_PARTS = re.compile(r",|;|\band\b")
JSON_STARTS = re.compile(r"[{\[]")
TRAILING_COMMA = re.compile(r",(\s*[}\]])")
JSON_TRIES = 8  # "{" or "[" positions tried before giving up on JSON
decode_json = json.JSONDecoder().raw_decode


@dataclass(frozen=True)
class Parse:
    """What was read from one answer."""

    context: str | None  # None when the article was not asked for
    qas: list[dict]  # [{"question": str, "answer": str}]
    status: str  # "ok" | "partial" | "none"
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


@lru_cache(maxsize=1024)
def _label_kind(label: str) -> str | None:
    """What a label names: question, answer, answers, title, article, qa (a section) or None."""
    key = " ".join(label.lower().replace("-", " ").replace("_", " ").split())
    words = key.split()
    if not words or len(words) > 6:
        return None
    if key in QUESTION_ROOTS:
        return "question"
    if key in ANSWER_ROOTS:
        return "answer"
    if key in ANSWERS_SECTION:
        return "answers"
    if "title" in words or key in TITLE_ROOTS:
        return "title"
    asks = {"question", "questions", "q"} & set(words) or "问题" in key or "问答" in key
    if asks and ({"answer", "answers", "pairs", "pair", "a", "and"} & set(words) or "答" in key):
        return "qa"
    if QA_WORDS & set(words) or "问答" in key or key.endswith("问题"):
        return "qa"
    if len(words) <= 3 and words[-1] in ("answer", "ans", "response"):
        return "answer"
    if len(words) <= 3 and words[-1] == "question":
        return "question"
    if words[-1] in ARTICLE_HEADS or key.endswith(ARTICLE_HEADS_ZH):
        return "article"
    return None


def _label(plain: str) -> tuple[str | None, str]:
    """(kind, rest of the line) when the line starts with a label, else (None, line)."""
    body = plain[LIST_PREFIX.match(plain).end():]
    sep = LABEL_SEP.search(body, 0, 48)
    if sep is None and len(body) > 48:
        return None, plain
    head, rest = (body[: sep.start()], body[sep.end():]) if sep else (body, "")
    kind = _head_kind(head)
    if kind is None:
        return None, plain
    return kind, rest.lstrip(":：)）.]】-–— \t")


@lru_cache(maxsize=4096)
def _head_kind(head: str) -> str | None:
    """:func:`_label_kind` of a label with its number and remark ("Question 3 (easy)")."""
    if not head[:1].isalpha():
        return None
    return _label_kind(head[: LABEL_TAIL.search(head).start()])


def _header_kind(plain: str) -> str | None:
    """A prose section header ("Here is a Wikipedia-style article about the tower:")."""
    if len(plain) > 200 or "?" in plain or "？" in plain:
        return None
    lowered = plain.lower()
    if not plain.endswith((":", "：")):  # "Next, the question-answer pairs."
        short = len(plain) < 80 and QA_PHRASE.search(lowered)
        return "qa" if short else None
    if re.search(r"\bq\s*&\s*a\b|\bqa\b|question|问答|问题", lowered):
        return "qa"
    if re.search(r"\b(?:article|passage|entry|context)\b|文章|百科|背景", lowered):
        return "article"
    if re.search(r"\banswers\b|答案", lowered):
        return "answers"
    return None


def _split_inline(text: str, bare: bool = False) -> tuple[str, str]:
    """A question and the answer on its line ("What is it? A: a tower", "… (Answer: a tower)";
    with ``bare`` also "What is it? - a tower")."""
    tail = text.rstrip()
    if tail.endswith(("?", "？")) and ":" not in tail and "：" not in tail:
        return text, ""
    paren = PAREN_ANSWER.search(text) if tail.endswith((")", "）")) else None
    if paren:
        return text[: paren.start()], paren.group(1)
    parts = INLINE_ANSWER.split(text, maxsplit=1)
    if len(parts) == 2 and parts[1].strip():
        return parts[0], parts[1]
    parts = DASH_ANSWER.split(text, maxsplit=1)
    if len(parts) == 2 and parts[1].strip():
        return parts[0], parts[1]
    if bare:
        mark = max(text.rfind("?"), text.rfind("？"))
        if 0 < mark < len(text) - 1:
            return text[: mark + 1], text[mark + 1:]
    return text, ""


def _is_paragraph(stripped: str) -> bool:
    """A long line of prose: no markup, label, question shape or chatter at its start."""
    if len(stripped) <= 120 or stripped[0] in MARKUP_STARTS or stripped.endswith(("?", "？")):
        return False
    head = stripped[:60]
    if ":" in head or "：" in head or " -" in head or " –" in head or " —" in head:
        return False
    return not _chatty(stripped)


def _chatty(text: str) -> bool:
    """Whether the text opens with the model's chatter ("Sure! Here is …", "以下是…")."""
    first = text[:1].lower()
    if first.isascii() and (first not in CHATTER_INITIALS
                            or FIRST_WORD.match(text).group().lower() not in CHATTER_WORDS):
        return False
    return CHATTER.match(text) is not None


def _join(lines: list[str]) -> str:
    """Lines joined by a space, or by nothing between two CJK characters (``…米。`` ``它是…``)."""
    text = ""
    for line in lines:
        line = line.strip()
        if line:
            text += (" " if text and (text[-1] < CJK or line[0] < CJK) else "") + line
    return _clean(text)


# -- line classification ---------------------------------------------------------------------------

class Line(NamedTuple):
    """A classified line: its kind, its text and an extra (a question's inline answer, a section)."""

    kind: str  # blank separator section title heading qlabel question answer item text table chatter
    text: str = ""
    extra: str = ""


def _questionish(text: str) -> bool:
    return "?" in text or "？" in text


@lru_cache(maxsize=4096)
def classify_line(raw: str) -> Line:
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
    plain = _plain(stripped).strip()
    heading = HEADING.match(plain)
    if heading:
        plain = plain[heading.end():]
    labelled = _labelled(stripped, plain)
    if labelled is not None:
        return labelled
    header = _header_kind(plain)
    if header is not None:
        return Line("section", "", header)
    if len(plain) < 150 and _chatty(plain):
        return Line("chatter", plain)
    listed = NUMBERED.match(plain) or BULLET.match(plain)
    if listed:
        body = plain[listed.end():]
        if _questionish(body):
            return Line("question", *_split_inline(body, bare=True))
        return Line("item", body, "numbered" if listed.group()[0] not in "-•+>*" else "")
    if heading or re.fullmatch(r"(\*\*|__).+(\*\*|__)", stripped):
        return Line("question", *_split_inline(plain)) if _questionish(plain) else Line("heading")
    if _questionish(plain) and len(plain) < 300:
        question, answer = _split_inline(plain)
        if answer or not re.search(r"[.!。！]\s", question):
            return Line("question", question, answer)
    return Line("text", stripped)


def _labelled(stripped: str, plain: str) -> Line | None:
    """The line as a label line, or None when it does not start with a known label."""
    kind, rest = _label(plain)
    if kind is None:
        return None
    if kind == "question":
        return Line("question", *_split_inline(rest)) if rest else Line("qlabel")
    if kind == "answer":
        return Line("answer", rest)
    if kind == "title":
        return Line("title")
    if kind == "article" and rest and _is_title(stripped, rest):
        rest = ""
    return Line("section", rest, kind)


def _is_title(line: str, rest: str) -> bool:
    """"**Wikipedia Article: The Eiffel Tower**": the label carries a title, not text."""
    bold = re.fullmatch(r"\s*(\*\*|__).*(\*\*|__)\s*", line) is not None
    return bold or (len(rest) < 80 and not re.search(r"[.!?。！？]$", rest))


# -- assembly --------------------------------------------------------------------------------------

def _normalise(text: str) -> str:
    """Line ends unified; chat-template tokens and reasoning (``<think>…</think>``, or never
    closed) removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "<|" in text or "</s>" in text:
        text = SPECIAL_TOKEN.sub("", text)
    if "<think>" in text or "</think>" in text or "<THINK>" in text:
        text = THINK.sub("", text)
        lowered = text.lower()
        if "<think>" in lowered:  # reasoning never closed: nothing after it is an answer
            text = text[: lowered.index("<think>")]
        text = text.replace("</think>", "")
    return text


class _Reader:
    """The state machine: sections, the pending question, the pairs read so far."""

    def __init__(self, want_article: bool):
        self.want_article = want_article
        self.section = "start"
        self.article: list[str] = []
        self.qas: list[dict] = []
        self.question: str | None = None
        self.answer: list[str] = []
        self.expect_question = False  # after a question label alone on its line ("### Question 3")
        self.unanswered: list[str] = []
        self.orphans = 0  # answers with no question to go to
        self.blank_since_answer = False
        self.blank_since_question = False
        self.table_columns: tuple[int, int] | None = None

    def _finish(self) -> None:
        if self.question is not None:
            question, answer = _clean(self.question), _join(self.answer)
            if question and answer:
                self.qas.append({"question": question, "answer": answer})
            elif question:
                self.unanswered.append(question)
        self.question, self.answer, self.expect_question = None, [], False

    def _ask(self, question: str, answer: str) -> None:
        self._finish()
        self.section = "qa"
        self.question = question
        self.answer = [answer] if answer.strip() else []
        self.blank_since_answer = self.blank_since_question = False

    def _answer(self, text: str) -> None:
        """An answer line: to the pending question, else to the first unanswered one."""
        if not text and self.unanswered:  # "Answers:" below a list of questions
            self._finish()
            self.section = "answers"
            return
        if self.unanswered and self.question is not None and not self.answer and self.blank_since_question:
            self._finish()  # a block of answers below a block of questions
            self.section = "answers"
        if self.section == "answers" and text:
            self._finish()  # one answer for each listed question, in order
        if self.question is None and self.unanswered:
            self.question = self.unanswered.pop(0)
        if self.question is None:
            self.orphans += bool(text)
            return
        if text:
            self.answer.append(text)

    def _table(self, row: str) -> None:
        cells = [_clean(c) for c in row.strip().strip("|").split("|")]
        if all(TABLE_RULE.fullmatch(c) or not c for c in cells):
            return
        kinds = [_label_kind(c) if c and len(c) < 20 else None for c in cells]
        if "question" in kinds:
            q = kinds.index("question")
            self.table_columns = (q, kinds.index("answer") if "answer" in kinds else q + 1)
            return
        q, a = self.table_columns or ((1, 2) if len(cells) >= 3 and cells[0].rstrip(".").isdigit() else (0, 1))
        if len(cells) > max(q, a):
            self._ask(cells[q], cells[a])
            self._finish()

    def feed(self, line: Line) -> None:
        kind = line.kind
        if kind in ("blank", "separator"):
            if self.question is not None:
                self.blank_since_answer = bool(self.answer)
                self.blank_since_question = True
            if self.section == "article" and self.article and self.article[-1] != "":
                self.article.append("")
        elif kind == "section":
            self._section(line)
        elif kind == "table":
            self._table(line.text)
        elif kind == "question":
            self._ask(line.text, line.extra)
        elif kind == "qlabel":
            self._finish()
            self.section, self.expect_question = "qa", True
        elif kind == "answer" and (self.section != "article" or self.question is not None):
            self._answer(line.text)
        elif kind in ("item", "text", "answer"):
            self._content(line)

    def _section(self, line: Line) -> None:
        self._finish()
        self.section = line.extra
        if line.text and line.extra == "article":
            self.article.append(line.text)
        elif line.text and line.extra == "qa":
            self.feed(classify_line(line.text))

    def _content(self, line: Line) -> None:
        """An unlabelled line: an expected question, an answer, or article text."""
        text = line.text
        if self.expect_question:
            self.question, self.expect_question = text, False
        elif self.section == "answers":
            if self.unanswered:
                self.qas.append({"question": self.unanswered.pop(0), "answer": _clean(text)})
        elif self.section == "qa":
            self._qa_text(line)
        elif self.want_article and self.section in ("start", "article"):
            if self.section == "start" and text.rstrip().endswith((":", "：")):
                return  # an introduction above the article
            self.section = "article"
            self.article.append(text)

    def _qa_text(self, line: Line) -> None:
        """Plain text inside the QA section: an answer, its continuation, or an unmarked question."""
        text = BULLET.sub("", line.text, count=1) if line.text[:1] in "-•+>*" else line.text
        if self.question is None or (self.answer and line.extra == "numbered"):
            if line.extra == "numbered" or line.kind == "text":
                self._ask(text, "")
        elif not self.answer:
            self.answer = [text]
        elif not self.blank_since_answer and not REMARK.match(text):
            self.answer.append(text)

    def result(self) -> tuple[str, list[dict], list[str]]:
        """(article, pairs, issues of the reading itself)."""
        issues = []
        cut = (self.question is not None and not self.answer) or self.expect_question
        self._finish()
        if cut:
            if self.unanswered:
                self.unanswered.pop()
            issues.append("incomplete_pair")
        if self.unanswered:
            issues.append("unanswered_question")
        if self.orphans:
            issues.append("orphan_answer")
        return _join(self.article), self.qas, issues


def _read(text: str, want_article: bool) -> tuple[str, list[dict], list[str]]:
    reader = _Reader(want_article)
    for raw in text.split("\n"):
        reader.feed(classify_line(raw))
    return reader.result()


# -- JSON answers ----------------------------------------------------------------------------------

def _json_values(text: str):
    """(value, start, complete) for each JSON object or array found, the first ones first."""
    malformed = -1  # where a value that could not be read starts
    for tries, match in enumerate(JSON_STARTS.finditer(text)):
        if tries == JSON_TRIES:
            return
        start = match.start()
        try:
            value = decode_json(text, start)[0]
        except ValueError:
            pass
        else:  # inside a value that could not be read, it is only a part of the answer
            yield value, start, malformed < 0 or _closed(text[malformed:start])
            continue
        rest = text[start:].encode()
        try:
            jiter.from_json(rest)
        except ValueError as error:
            if "EOF" in str(error):  # cut off, not malformed: the complete part is usable
                yield jiter.from_json(rest, partial_mode="on"), start, False
                return
        repaired = _repair(text[start:])
        if repaired is not None:
            yield repaired, start, True
        elif malformed < 0:
            malformed = start


def _closed(text: str) -> bool:
    """Whether the value opening ``text`` is closed within it (``[citation needed] {…}``)."""
    return ("]" if text[0] == "[" else "}") in text


def _repair(text: str) -> object | None:
    """A malformed JSON value read anyway: trailing commas dropped, or a Python literal."""
    try:
        return decode_json(TRAILING_COMMA.sub(r"\1", text))[0]
    except ValueError:
        pass
    end = max(text.rfind("}"), text.rfind("]")) + 1
    if "'" not in text or not end:
        return None
    try:
        value = ast.literal_eval(text[:end])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def read_json(text: str) -> object | None:
    """The first JSON object or array in an answer (fenced, bare, after chatter or cut off), else None."""
    if "{" not in text and "[" not in text:
        return None
    return next((value for value, _, _ in _json_values(_normalise(text))), None)


def _key(name: object) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def _pick(mapping: dict, names: tuple[str, ...]):
    keyed = {_key(k): v for k, v in mapping.items()}
    return next((keyed[name] for name in names if name in keyed), None)


def _text(value: object) -> str:
    """A JSON value as text: lists joined by commas, an article object by its text."""
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return _text(_pick(value, ARTICLE_BODY_KEYS) or "")
    return "" if value is None else _clean(str(value))


def _json_pairs(items: object, cut: bool = False) -> tuple[list[dict], int]:
    """The complete pairs of a JSON list and how many items were not complete pairs; when the
    JSON was ``cut``, the last item counts only with two strings (a number or list may be cut)."""
    items = items if isinstance(items, list) else []
    pairs, incomplete = [], 0
    for position, item in enumerate(items, 1):
        if isinstance(item, dict):
            question, answer = _pick(item, QUESTION_KEYS), _pick(item, ANSWER_KEYS)
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
                 if isinstance(value, (str, dict)) and any(root in _key(key) for root in CONTEXT_ROOTS)), None)


def _zipped(data: dict) -> list | None:
    """Pairs given as two lists: ``{"questions": [...], "answers": [...]}``."""
    questions, answers = _pick(data, ("questions", "问题")), _pick(data, ("answers", "答案"))
    if isinstance(questions, list) and isinstance(answers, list) and len(questions) == len(answers):
        return [list(pair) for pair in zip(questions, answers)]
    return None


def _is_pair(item: object) -> bool:
    if isinstance(item, dict):
        return _pick(item, QUESTION_KEYS) is not None
    return isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)


def _from_json(text: str) -> tuple[str, list[dict], list[str], int] | None:
    """(context, pairs, issues, where the JSON starts) of a JSON answer, or None."""
    cut = None
    for data, start, complete in _json_values(text):
        cut = cut if complete else start
        context = ""
        if isinstance(data, dict):
            context = _text(_pick(data, CONTEXT_KEYS) or _context_like(data))
            items = _pairs_value(data)
            if items is None and _pick(data, QUESTION_KEYS) is not None:
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
            return context, pairs, issues, start
    return None if cut is None else ("", [], ["partial_json"], cut)


# -- self-checks -----------------------------------------------------------------------------------

def _starts_with_label(text: str) -> bool:
    """Whether a question or answer still starts with a question or answer label."""
    first = text[:1].lower()
    if first.isascii() and first.isalpha():
        if first not in LABEL_INITIALS or FIRST_WORD.match(text).group().lower() not in LABEL_WORDS:
            return False
    elif first not in LABEL_FIRST_CHARS:
        return False
    return _label(text)[0] in ("question", "answer") or LOOSE_LABEL.match(text) is not None


def _is_question(text: str) -> bool:
    return text.endswith(("?", "？")) or "?" in text or bool(INTERROGATIVE.match(text) or INTERROGATIVE_ZH.search(text))


def _label_only(text: str) -> bool:
    if len(text) > 12:
        return False
    key = text.lower().strip(" .:：-–—*")
    return not key or (len(key) <= 8 and _label_kind(key) in ("question", "answer", "answers"))


def _check_pairs(qas: list[dict], issues: list[str]) -> list[dict]:
    """The pairs with empty or label-only answers dropped; issues found added."""
    kept = []
    for qa in qas:
        question, answer = qa["question"], qa["answer"]
        if _label_only(answer):
            issues.append("empty_answer")
            continue
        if _starts_with_label(question):
            issues.append("label_in_question")
        if _starts_with_label(answer):
            issues.append("label_in_answer")
        if not _is_question(question):
            issues.append("not_a_question")
        kept.append(qa)
    return kept


def _article_issue(article: str) -> bool:
    """Whether the article starts with chatter or a label, or holds a label or ends with chatter."""
    if _chatty(article):
        return True
    marked = ":" in article or "：" in article or "]" in article[:48] or "】" in article[:48]
    if marked and (_label(article)[0] is not None or LABEL_INSIDE.search(article)):
        return True
    ending = article[-150:].lower()
    for phrase in CHATTER_INSIDE:
        if phrase in ending:
            return True
    return False


# -- public API ------------------------------------------------------------------------------------

def parse_answer(text: str, want_article: bool, finish_reason: str | None = None) -> Parse:
    """Read a model's answer: the article (when ``want_article``) and the question-answer pairs,
    with an honest status and the issues found (see the module docstring)."""
    text = _normalise(text)
    parsed = _from_json(text) if ("{" in text or "[" in text) else None
    if parsed is not None:
        context, qas, issues, start = parsed
        if want_article and not context:
            context = _read(text[:start], True)[0]
    else:
        context, qas, issues = _read(text, want_article)
    truncated = finish_reason == "length"
    if truncated and qas and parsed is None and text.rstrip().endswith(qas[-1]["answer"][-8:]):
        qas = qas[:-1]  # the last answer ran into max_tokens: it may be cut
        issues.append("incomplete_pair")
    qas = _check_pairs(qas, issues)
    if truncated:
        issues.insert(0, "truncated")
    if not qas:
        issues.append("no_pairs")
    if want_article and not context:
        issues.append("no_article")
    elif want_article and _article_issue(context):
        issues.append("article_chatter")
    status = "ok" if not issues else "partial" if (qas or (want_article and context)) else "none"
    truncated = truncated or "partial_json" in issues or "incomplete_pair" in issues
    return Parse(context if want_article else None, qas, status, tuple(dict.fromkeys(issues)), truncated)


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
