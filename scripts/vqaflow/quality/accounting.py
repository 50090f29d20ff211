"""Accounting for every word of an answer: a check on the parse RESULT, whichever reader made it.

The extracted fields (the article, each question, each answer) are found again in the answer,
word by word (casefolded, NFKC; CJK characters one by one), and taken out of it. What is left
must be recognised as something that is not content:

- markup: punctuation and symbols (markdown markers, bullets, table rules, emoji), code fences,
  XML/HTML tags, JSON syntax and keys (a JSON answer's strings are accounted, its keys are not);
- labels and numbering: ``Question 3``, ``Q1:``, ``A.``, ``答案：``, ``第1题``, ``Article
  (continued)``, ``Frage``, ``Antwort`` ... (any run of label words and numbers);
- headings outside the fields: a short markdown heading, a bold line or a line ending in a colon
  that does not read as a question; a short title line just above the article;
- remarks: an explanation, a source (``Explanation: …``, ``(according to the article)``); a
  list of sources under a ``References`` / ``See also`` / ``参考文献`` heading; a table's header row;
- chatter: a line opening like the model's chatter ("Sure!", "Here are", "以下是", "Note:"), or
  any text before the first or after the last field that opens like chatter or closes like it
  ("Let me know ...", "Hope this helps", "如有...").

Everything else is *unread*: :func:`unread_spans` returns it, shortened. Inside a field (between
its first and last word) only markup and labels may be skipped: a heading or a sentence the
parser dropped from the middle of an article is unread.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate
from typing import NamedTuple

from .answer_lines import (
    CHATTER,
    CITATION_MARK,
    header_kind,
    is_sources_heading,
    is_table_rule,
    offers_alternative,
    read_label,
    strip_emphasis,
)
from .answer_reader import REMARK
from .text import CJK_LETTERS, is_question, nfkc, opens_with_remark

UNREAD_SHOWN = 3  # unread spans kept in a parse
UNREAD_CHARS = 60  # characters shown of each
_WORD = re.compile(r"[^\W_]+")
_SPAN = re.Match.span
_GROUP = re.Match.group
_TOKEN = re.compile(f"[{CJK_LETTERS}]|[^\\W_{CJK_LETTERS}]+")  # a CJK character or a run of others
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)[\w+.-]*[ \t]*$", re.MULTILINE)
_TAG = re.compile(r"</?[A-Za-z][\w:.-]{0,30}(?:\s[^<>\n]{0,120})?/?>")
_LABELS = (
    "questions?", "ques", "query", "answers?", "ans", "responses?", "reply", "user", "human", "assistant",
    "gpt", "qas?", "faq", "quiz", "pairs?", "and", "articles?", "context", "passage", "text", "entry",
    "background", "document", "content", "wikipedia", "wiki", "style", "title", "description", "summary",
    "overview", "essay", "key", "section", "part", "continued", "artículo", "articulo", "artikel", "articolo",
    "artigo", "texto", "testo", "contexto", "contesto", "kontext", "статья", "текст", "記事", "기사", "본문",
    "frage", "antwort", "pregunta",
    "respuesta", "réponse", "reponse", "domanda", "risposta", "pergunta", "resposta", "вопрос", "ответ",
    "質問", "回答", "答え", "問題", "问题", "提问", "题目", "答案", "回答", "解答", "文章", "背景", "上下文",
    "正文", "短文", "段落", "百科", "条目", "内容", "简介", "标题", "问答", "部分", "续", "序号", "编号", "index",
    "问", "答", "题", "第",
)
_NUMBERS = r"\d{1,3}|[一二三四五六七八九十]{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|no\.\s*\d{1,3}"
_SHORT_LABEL = r"q\s*[&/]\s*a|[qa](?:\d{1,3})?(?=\s*[:：.)\]】>|-])|[qa]\d{1,3}"  # "Q:", "A.", "Q1"; never a bare "a"
_LABEL_RUN = re.compile(
    rf"(?<![^\W_])(?:(?:{'|'.join(_LABELS)}|{_NUMBERS}|{_SHORT_LABEL})(?![^\W\d_一二三四五六七八九十])[\s&/-]*)+"
    r"(?![^\W_])",
    re.IGNORECASE)
_AROUND = re.compile(  # phrases of chatter around the content
    r"here you go|here it is|sure thing|let me know|hope (?:this|these|that|it|you)|feel free|"
    r"if you (?:need|want|would|have|'d)|happy to help|glad to help|good luck|enjoy|thank|"
    r"如有|希望|如果您|如果你|需要更多|以上", re.IGNORECASE)
_FILLER = re.compile(r"(?:hmm*|hm+|um+|uh+|ah+|oh+|well|okay|ok|alright|so)[\s.!,…]*", re.IGNORECASE)
_PIECE = re.compile(r"[^\x01\n]*[^\W_][^\x01\n]*")  # leftover text holding a word, on one line
_NUMBERING = re.compile(r"(?:[\W_]|\d|[一二三四五六七八九十])*")
_LIST_ITEM = re.compile(r"\s*(?:[-•*+>]|\d{1,3}[.)、]|[(（]\d{1,3}[)）]|[A-Za-z][.)]|[一二三四五六七八九十]{1,3}、)")
_CONTINUES = frozenset(",，、;；:：(（-–—&/")  # a line ending in one of these goes on
_HEADING = re.compile(r"\s*(?:#{1,6}\s|(\*\*|__).+(\*\*|__)\s*$)")
_SENTENCE_END = re.compile(r"[.!。！]\s*$")


def _comparable(text: str) -> str:
    """``text`` as words are compared: NFKC, lower case (kept as is where that would change its length)."""
    text = nfkc(text)
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text


def tokens(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The words of ``text`` as compared (NFKC, lower case; CJK characters one by one), and
    where each is in ``text``."""
    comparable = _comparable(text)
    if len(comparable) != len(text):  # NFKC changed the length: words one by one
        found = [(_comparable(match.group()), match.span()) for match in _TOKEN.finditer(text)]
        return [word for word, _ in found], [span for _, span in found]
    matches = list(_TOKEN.finditer(comparable))
    return list(map(_GROUP, matches)), list(map(_SPAN, matches))


def word_list(text: str) -> list[str]:
    """The words of ``text`` as :func:`tokens` compares them."""
    comparable = _comparable(text)
    if len(comparable) != len(text):
        return [_comparable(word) for word in _TOKEN.findall(text)]
    return _TOKEN.findall(comparable)


def markup_removed(text: str) -> str:
    """Code fences and tags blanked (same length): markup that holds letters."""
    if "```" in text or "~~~" in text:
        text = _FENCE.sub(lambda m: " " * len(m.group()), text)
    if "<" in text:
        text = _TAG.sub(lambda m: " " * len(m.group()), text)
    return text


class _Ledger:
    """The answer's words, and which were taken by a field (the words joined by ``\\x00`` are
    searched with ``str.find``; ``taken`` marks the words taken)."""

    def __init__(self, text: str):
        self.text = text
        self.words, self.spans = tokens(text)
        self.offsets = list(accumulate(map((1).__add__, map(len, self.words)), initial=1))
        self.joined = "\x00" + "\x00".join(self.words) + "\x00"
        self.taken = bytearray(len(self.words))
        self.runs: list[tuple[int, int, int]] = []  # (first word, last word, field) taken together

    def _find(self, sequence: list[str], after: int) -> int:
        """Index of the first word of the first free occurrence of ``sequence`` at or after
        word ``after`` (else anywhere), or -1."""
        needle = "\x00" + "\x00".join(sequence) + "\x00"
        for start in ((self.offsets[after] - 1 if after < len(self.words) else len(self.joined)), 0)[:1 + bool(after)]:
            at = self.joined.find(needle, start)
            while at >= 0:
                first = bisect_right(self.offsets, at + 1) - 1
                if self.taken.find(1, first, first + len(sequence)) < 0:
                    return first
                at = self.joined.find(needle, at + 1)
        return -1

    def _take(self, first: int, count: int, field: int) -> None:
        self.taken[first:first + count] = b"\x01" * count
        self.runs.append((first, first + count - 1, field))

    def take(self, text: str, field: int, after: int = 0) -> tuple[int, int]:
        """Take the words of a field: whole where possible, else in the longest runs found.
        (The index after its last word taken, ``after`` when none; how many of its words were
        not found free.)"""
        wanted = word_list(text)
        position, end, missing = 0, after, 0
        while position < len(wanted):
            length, first = self._longest(wanted, position, end)
            if not length:
                position, missing = position + 1, missing + 1
                continue
            self._take(first, length, field)
            position, end = position + length, first + length
        return end, missing

    def _longest(self, wanted: list[str], position: int, after: int) -> tuple[int, int]:
        """The longest run of ``wanted`` from ``position`` found free in the answer, and where."""
        first = self._find(wanted[position:], after)
        if first >= 0:
            return len(wanted) - position, first
        low, high, where = 0, len(wanted) - position - 1, -1  # found(low) holds, found(high + 1) does not
        while low < high:
            middle = (low + high + 1) // 2
            found = self._find(wanted[position:position + middle], after)
            if found >= 0:
                low, where = middle, found
            else:
                high = middle - 1
        return low, where


@lru_cache(maxsize=4096)
def _labels_only(piece: str) -> bool:
    """Whether a leftover piece is only markup (citation marks too), labels and numbering."""
    plain = CITATION_MARK.sub(" ", strip_emphasis(piece))
    if _WORD.search(_LABEL_RUN.sub(" ", plain)) is None:
        return True
    kind, rest = read_label(plain.strip())  # "Short answer:", "Image description" alone
    return kind is not None and _WORD.search(rest) is None


def _is_heading(line: str) -> bool:
    """A short heading: markdown heading, bold line, a line ending in a colon or a prose section
    header ("Next, the question-answer pairs."), not a question nor an alternative offered."""
    plain = line.strip()
    if len(plain) > 100 or offers_alternative(plain):
        return False
    bare = strip_emphasis(plain).strip("#:： \t")
    if not (_HEADING.match(plain) or plain.endswith((":", "：")) or header_kind(bare)):
        return False
    return not is_question(bare)


def _is_title(line: str) -> bool:
    plain = strip_emphasis(line).strip("#*_ \t")
    return 0 < len(plain) <= 80 and not _SENTENCE_END.search(plain) and not is_question(plain)


def _opens_article(piece: str) -> bool:
    """An article or title label ("Content:", "Article (continued)"): between the article's title
    and its text, or its two parts, it opens article text."""
    return read_label(strip_emphasis(piece).strip())[0] in ("article", "title")


def _plain(piece: str) -> str:
    return strip_emphasis(piece).strip(" \t-*#>•:：(（[【")


@lru_cache(maxsize=4096)
def _is_chatter(piece: str, outside: bool) -> bool:
    """Chatter: opens like the model's chatter or is a filler ("Hmm."); ``outside`` the content,
    also holds a phrase of chatter ("here you go", "let me know", "hope this helps")."""
    plain = _plain(piece)
    if CHATTER.match(plain) or _FILLER.fullmatch(plain):
        return True
    if not outside or len(plain) > 200 or "?" in plain or "？" in plain:
        return False  # a question after the content is a pair the parser missed, not chatter
    return _AROUND.search(plain) is not None


class Accounting(NamedTuple):
    """What the accounting found: unread spans (shortened); how many words of the fields are not
    free in the answer (markup read as text, or words read twice); the fields (0 the article,
    1 + 2k question k, 2 + 2k answer k) that span a label; the questions and answers that run
    on to a next line that is not a list item (free text only)."""

    unread: tuple[str, ...]
    foreign: int = 0
    labelled: frozenset[int] = frozenset()
    joined: frozenset[int] = frozenset()


class _Pieces:
    """What is left of the answer once the fields are taken out, cut into pieces (runs of text
    between field words and line ends), each recognised (label, chatter, heading, title,
    remark) or unread."""

    def __init__(self, ledger: _Ledger, article_field: int | None):
        text, spans = ledger.text, ledger.spans
        self.runs = sorted((spans[first][0], spans[last][1], field) for first, last, field in ledger.runs)
        masked, at = [], 0
        for start, end, _ in self.runs:
            masked += [text[at:start], "\x01" * (end - start)]
            at = end
        self.masked = "".join(masked) + text[at:]
        self.first = self.runs[0][0] if self.runs else len(text)
        self.last = self.runs[-1][1] if self.runs else 0
        self.fields: dict[int, tuple[int, int]] = {}
        for start, end, field in self.runs:
            self.fields[field] = (self.fields.get(field, (start, end))[0], end)
        self.text = text
        self.article = article_field
        self.labelled: set[int] = set()

    def unread(self) -> list[tuple[int, int]]:
        """Character ranges of the unread pieces, neighbours with no field between them merged."""
        found: list[tuple[int, int]] = []
        for match in _PIECE.finditer(self.masked):
            start, end = match.span()
            kind = self._kind(start, end)
            if kind is None:
                if found and "\x01" not in self.masked[found[-1][1]:start]:
                    found[-1] = (found[-1][0], end)
                else:
                    found.append((start, end))
            elif kind == "label":
                self._label_inside(start, end)
        return found

    def joined(self) -> frozenset[int]:
        """The questions and answers whose words go on to a next line that neither continues a
        sentence (after a comma, or opening in lower case) nor is a list item."""
        found = set()
        for field, (start, end) in self.fields.items():
            at = self.text.find("\n", start, end) if field else -1
            while at >= 0:
                line = self.text[at + 1:self.text.find("\n", at + 1) % (len(self.text) + 1)].strip()
                before = self.text[start:at].rstrip()[-1:]
                if line and not (_LIST_ITEM.match(line) or line[0].islower() or before in _CONTINUES):
                    found.add(field)
                    break
                at = self.text.find("\n", at + 1, end)
        return frozenset(found)

    def _label_inside(self, start: int, end: int) -> None:
        """A label word between two parts of one field: the field holds a label."""
        if _NUMBERING.fullmatch(self.masked[start:end]):
            return  # numbering: a list inside an article
        before = next((field for _, stop, field in reversed(self.runs) if stop <= start), -1)
        after = next((field for begin, _, field in self.runs if begin >= end), -2)
        if before == after and not (before == self.article and _opens_article(self.masked[start:end])):
            self.labelled.add(before)

    def _kind(self, start: int, end: int) -> str | None:
        """What a leftover piece is, or None when it is unread."""
        piece = self.masked[start:end]
        if _labels_only(piece):
            return "label"
        outside = end <= self.first or start >= self.last
        if not outside and any(begin < start and end < stop for begin, stop in self.fields.values()):
            return None  # inside a field only labels and markup may be skipped
        if _is_chatter(piece, outside):
            return "chatter"
        if REMARK.match(_plain(piece)) or opens_with_remark(piece):
            return "remark"
        whole_line = (start == 0 or self.masked[start - 1] == "\n") and (
            end == len(self.masked) or self.masked[end] == "\n")
        if not whole_line:
            return None
        if _is_heading(piece) or self._table_header(end):
            return "heading"
        if self._in_sources(start):
            return "source"
        return "title" if self._title_of_article(end, piece) else None

    def _table_header(self, end: int) -> bool:
        """A table row just above the table's rule line (``|---|---|``): the header."""
        following = self.text[end + 1:self.text.find("\n", end + 1) % (len(self.text) + 1)]
        return end < len(self.text) and is_table_rule(following)

    def _in_sources(self, start: int) -> bool:
        """Whether a line is an item of a list of sources (under ``References``, ``See also``,
        ``参考文献`` …): the lines above it up to that heading are list items or blank."""
        at = start
        while at > 0:
            line_start = self.text.rfind("\n", 0, at - 1) + 1
            line = self.text[line_start:at].strip()
            if is_sources_heading(line):
                return True
            if line and not _LIST_ITEM.match(line):
                return False
            at = line_start
        return False

    def _title_of_article(self, end: int, line: str) -> bool:
        """A short title line just above the article's first word."""
        if self.article not in self.fields:
            return False
        following = next((begin for begin, _, _ in self.runs if begin >= end), None)
        return following == self.fields[self.article][0] and _is_title(line)


def account(text: str, context: str | None, qas: list[dict], structured: bool = False) -> Accounting:
    """Account for every word of ``text`` (an answer as the parser read it): take out the
    fields (``context``, the questions and answers) and judge what is left (see the module
    docstring). ``structured``: the fields come from a JSON value, whose strings may hold line
    breaks."""
    ledger = _Ledger(markup_removed(text))
    if not ledger.words:
        return Accounting(())
    foreign = 0
    if context:
        foreign += ledger.take(context, 0)[1]
    after, question_ends = 0, []
    for number, qa in enumerate(qas):
        after, missing = ledger.take(qa["question"], 1 + 2 * number, after)
        question_ends.append(after)
        foreign += missing
    for number, qa in enumerate(qas):
        foreign += ledger.take(qa["answer"], 2 + 2 * number, question_ends[number])[1]
    pieces = _Pieces(ledger, 0 if context else None)
    shown = []
    for start, end in pieces.unread()[:UNREAD_SHOWN]:
        span = " ".join(ledger.text[start:end].split())
        shown.append(span if len(span) <= UNREAD_CHARS else span[:UNREAD_CHARS - 1] + "…")
    joined = frozenset() if structured else pieces.joined()
    return Accounting(tuple(shown), foreign, frozenset(pieces.labelled), joined)
