"""Classifying one line of a free-text answer by its structure.

:func:`classify_line` tells a label (a short word from a small vocabulary of label roots,
optionally bulleted, numbered or emphasised, followed by ``:``, ``：``, ``-``, ``)`` or ``.``,
or alone on its line), a prose section header ending with a colon, a question shape, a table
row, chatter or plain text. The text helpers here (markdown emphasis removed, lines joined,
labels and chatter recognised) are shared by the reader (:mod:`.answer_reader`) and the
parser's self-checks (:mod:`.parse`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from .text import is_cjk

# label roots: English, Chinese, and the words for question and answer in other common languages
QUESTION_ROOTS = frozenset({"question", "q", "ques", "query", "user", "human", "问题", "问", "提问", "题目", "frage",
                            "pregunta", "domanda", "pergunta", "vraag", "вопрос", "質問", "問題", "질문"})
ANSWER_ROOTS = frozenset({"answer", "a", "ans", "response", "reply", "assistant", "gpt", "答案", "答", "回答",
                          "解答", "antwort", "respuesta", "risposta", "resposta", "réponse", "reponse", "antwoord",
                          "ответ", "答え", "답", "답변", "정답"})
ANSWERS_SECTION = frozenset({"answers", "answer key", "answers key", "答案如下", "参考答案"})
FIRST_WORD = re.compile(r"[A-Za-z]+")
TITLE_ROOTS = frozenset({"title", "标题", "题目名称"})
ARTICLE_HEADS = frozenset({"article", "context", "passage", "text", "entry", "background", "document",
                           "content", "wikipedia", "wiki", "description", "summary", "overview", "essay",
                           "artículo", "articulo", "artikel", "articolo", "artigo", "texto", "testo", "contexto",
                           "contesto", "kontext", "статья", "текст", "記事", "기사", "본문"})
ARTICLE_HEADS_ZH = ("文章", "背景", "上下文", "正文", "短文", "段落", "百科", "条目", "内容", "描述", "介绍", "简介")
QA_WORDS = frozenset({"qa", "q&a", "qas", "q/a", "faq", "quiz", "pairs", "questions"})

# line structure
LIST_PREFIX = re.compile(  # a bullet, a list number, an opening bracket
    r"(?:[-•+>]\s*)?(?:[(（]?(?:\d{1,3}|[一二三四五六七八九十]{1,3})[.)、）:：]\s*)?[\[【]?")
LABEL_SEP = re.compile(r"[:：)）.\]】]|[-–—](?!\S)")
LABEL_TAIL = re.compile(  # a label's number, remark or closing bracket ("Question 3 (easy)]", "Q1 [Easy]")
    r"\s*(?:(?:#|no\.?\s*)?(?:\d{1,3}|[一二三四五六七八九十]{1,3}|one|two|three|four|five|six|seven|eight|nine|ten))?"
    r"\s*(?:[(（][^)）]{0,30}[)）]?|[\[【][^\]】]{0,30}[\]】]?)?\s*$",
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
ALTERNATIVE = re.compile(
    r"[\W_]*(?:(?i:alternatively|alternative(?:\s+(?:question|pair|version|answer))?\s*[:：]|or\s*[,:：]|"
    r"another\s+(?:option|possibility|possible|alternative|version|way)|other\s+options?)|或者|另一种|另外也可以|也可以问)")
CITATION_MARK = re.compile(r"\[(?:\d{1,3}|[a-z]|citation needed|clarification needed|来源请求|需要来源)\]", re.IGNORECASE)
SOURCES_HEADING = re.compile(
    r"(?i:references?|sources?|see also|external links|further reading|bibliography|citations?|notes and references)"
    r"|参考文献|参考资料|参考来源|延伸阅读|相关条目|来源|出处")
TABLE_RULE = re.compile(r":?-{2,}:?")  # a cell of a table's rule row
ARTICLE_ITSELF = re.compile(r"\b(?:article|wikipedia|wiki|passage)\b|文章|百科|维基")  # a heading naming the article
QA_NAMED = re.compile(r"\bq\s*&\s*a\b|\bqa\b|question|问答|问题")  # a prose header naming the pairs
ARTICLE_NAMED = re.compile(r"\b(?:article|passage|entry|context)\b|文章|百科|背景")  # ... the article
QA_PHRASE = re.compile(r"question[- ]answer|questions? and answers?|\bq\s*&\s*a\b|\bqa pairs|问答")
NUMBERED = re.compile(r"(?:[(（]?\d{1,3}[.)、）]|[一二三四五六七八九十]{1,3}、)\s*")
BULLET = re.compile(r"(?:[-•+>]|\*(?=\s))\s*")
HEADING = re.compile(r"#{1,6}\s*")
SEPARATOR = re.compile(r"[-*_=~]{3,}")
EMPHASIS_PRESENT = re.compile(r"[*_`~]")
UNDERSCORE = re.compile(r"(?<!\w)_(?=\S)|(?<=\S)_(?!\w)")
MARKUP_STARTS = frozenset("#*_|-•+>0123456789<`([（【")


def clean(text: str) -> str:
    """Markdown emphasis removed, whitespace collapsed."""
    return " ".join(strip_emphasis(text).split())


def strip_emphasis(text: str) -> str:
    """Markdown emphasis removed: ``**``, ``__``, ``*``, backticks, ``~~`` and ``_`` at word edges."""
    if not EMPHASIS_PRESENT.search(text):
        return text
    text = text.replace("**", "").replace("__", "").replace("`", "").replace("~~", "").replace("*", "")
    return UNDERSCORE.sub("", text) if "_" in text else text


@lru_cache(maxsize=1024)
def label_kind(label: str) -> str | None:
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


def read_label(plain: str) -> tuple[str | None, str]:
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
    """:func:`label_kind` of a label with its number and remark ("Question 3 (easy)")."""
    if not head[:1].isalpha():
        return None
    return label_kind(head[: LABEL_TAIL.search(head).start()])


def header_kind(plain: str) -> str | None:
    """A prose section header ("Here is a Wikipedia-style article about the tower:"): the kind of
    section it opens; ``both`` when it names the article and the pairs (the answer's own
    introduction before any text, else the pairs' header)."""
    if len(plain) > 200 or "?" in plain or "？" in plain:
        return None
    lowered = plain.lower()
    if not plain.endswith((":", "：")):  # "Next, the question-answer pairs."
        if not (len(plain) < 100 and QA_PHRASE.search(lowered)):
            return None
        return "both" if ARTICLE_NAMED.search(lowered) else "qa" if len(plain) < 80 else None
    if QA_NAMED.search(lowered):  # "an article followed by question-answer pairs", "pairs based on the article"
        return "both" if ARTICLE_NAMED.search(lowered) else "qa"
    if ARTICLE_NAMED.search(lowered):
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
    return not chatty(stripped)


def chatty(text: str) -> bool:
    """Whether the text opens with the model's chatter ("Sure! Here is …", "以下是…")."""
    first = text[:1].lower()
    if first.isascii() and (first not in CHATTER_INITIALS
                            or FIRST_WORD.match(text).group().lower() not in CHATTER_WORDS):
        return False
    return CHATTER.match(text) is not None


def join_lines(lines: list[str]) -> str:
    """Lines joined by a space, or by nothing between two CJK characters (``…米。`` ``它是…``)."""
    text = ""
    for line in lines:
        line = line.strip()
        if line:
            text += (" " if text and not (is_cjk(text[-1]) and is_cjk(line[0])) else "") + line
    return clean(text)


def join_paragraphs(lines: list[str]) -> str:
    """An article's lines joined into paragraphs (:func:`join_lines`), an empty line between two
    paragraphs; paragraphs separated by a blank line (``\n\n``), citation marks taken out."""
    paragraphs, current = [], []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append(without_citation_marks(join_lines(current)))
            current = []
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def without_citation_marks(text: str) -> str:
    """An article's text without Wikipedia's citation marks (``[1]``, ``[2][3]``, ``[citation
    needed]``, ``[来源请求]``): markup, not words of the article."""
    if "[" not in text:
        return text
    return " ".join(CITATION_MARK.sub("", text).split())


def is_table_rule(row: str) -> bool:
    """Whether a table row is its rule (``|---|:--:|``): every cell dashes or empty."""
    return "-" in row and all(TABLE_RULE.fullmatch(cell.strip()) or not cell.strip()
                              for cell in row.strip().strip("|").split("|"))


def offers_alternative(text: str) -> bool:
    """Whether a line offers an alternative ("Alternatively:", "Or, another question:", "或者："):
    which of the pairs is the answer is a guess."""
    return ALTERNATIVE.match(strip_emphasis(text)) is not None


def is_sources_heading(text: str) -> bool:
    """Whether a line heads a list of sources after an article (``### References``, ``See
    also:``, ``参考文献``): the list is no part of the article."""
    return SOURCES_HEADING.fullmatch(strip_emphasis(text).strip(" \t#:：")) is not None


def names_article(text: str) -> bool:
    """Whether a heading names the article itself ("A Wikipedia-style article about …"), not its
    subject: it is a section label, not the article's title."""
    return ARTICLE_ITSELF.search(text.lower()) is not None


class Line(NamedTuple):
    """A classified line: its kind, its text and an extra (a question's inline answer, a section)."""

    kind: str  # blank separator section title heading qlabel question answer item text table chatter
    text: str = ""
    extra: str = ""  # a question's inline answer; a section's kind; "article" on a title its label opens


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
    plain = strip_emphasis(stripped).strip()
    heading = HEADING.match(plain)
    if heading:
        plain = plain[heading.end():]
    labelled = _labelled(stripped, plain)
    if labelled is not None:
        return labelled
    header = header_kind(plain)
    if header is not None:
        return Line("section", "", header)
    if len(plain) < 150 and chatty(plain):
        return Line("chatter", plain)
    listed = NUMBERED.match(plain) or BULLET.match(plain)
    if listed:
        body = plain[listed.end():]
        if _questionish(body):
            return Line("question", *_split_inline(body, bare=True))
        return Line("item", body, "numbered" if listed.group()[0] not in "-•+>*" else "")
    if heading or re.fullmatch(r"(\*\*|__).+(\*\*|__)", stripped):
        return Line("question", *_split_inline(plain)) if _questionish(plain) else Line("heading", clean(plain))
    if _questionish(plain) and len(plain) < 300:
        question, answer = _split_inline(plain)
        if answer or not re.search(r"[.!。！]\s", question):
            return Line("question", question, answer)
    return Line("text", stripped)


def _labelled(stripped: str, plain: str) -> Line | None:
    """The line as a label line, or None when it does not start with a known label."""
    kind, rest = read_label(plain)
    if kind is None:
        return None
    if kind == "question":
        return Line("question", *_split_inline(rest)) if rest else Line("qlabel")
    if kind == "answer":
        return Line("answer", rest)
    if kind == "title":
        return Line("title", clean(rest))
    if kind == "article" and rest and _is_title(stripped, rest):
        return Line("title", clean(rest), "article")
    return Line("section", rest, kind)


def _is_title(line: str, rest: str) -> bool:
    """"**Wikipedia Article: The Eiffel Tower**": the label carries a title, not text."""
    bold = re.fullmatch(r"\s*(\*\*|__).*(\*\*|__)\s*", line) is not None
    return bold or (len(rest) < 80 and not re.search(r"[.!?。！？]$", rest))
