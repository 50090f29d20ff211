"""The reader of a free-text answer: a small state machine that takes the classified lines
(:func:`.answer_lines.classify_line`) one by one and assembles the article and the pairs.

The article keeps its paragraphs (a blank line between two), its sub-headings as paragraphs of
their own, and its title: a heading, a title label (``Title: …``, ``Wikipedia Article: The
Eiffel Tower``) or a short line above its first paragraph becomes its first paragraph."""

from __future__ import annotations

import re

from .answer_lines import (
    BULLET,
    Line,
    classify_line,
    clean,
    is_sources_heading,
    is_table_rule,
    join_lines,
    join_paragraphs,
    label_kind,
    names_article,
)

REMARK = re.compile(r"(?:explanation|reason|reasoning|rationale|evidence|source|note|difficulty|type|"
                    r"category|hint|解释|解析|理由|说明|提示|难度|类型)\b\s*[:：]", re.IGNORECASE)
WORDS = re.compile(r"[^\W_]")  # a title holds a word (not YAML's "|")


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
        self.table_rows = 0  # rows of the table being read
        self.header_pair: dict | None = None  # the pair read from a table's first row
        self.subheading = ""  # a heading inside the article, kept when article text follows it
        self.title = ""  # a title above the article, kept when article text follows it

    def _finish(self) -> None:
        if self.question is not None:
            question, answer = clean(self.question), join_lines(self.answer)
            if question and answer:
                self.qas.append({"question": question, "answer": answer})
            elif question:
                self.unanswered.append(question)
        self.question, self.answer, self.expect_question = None, [], False

    def _ask(self, question: str, answer: str) -> None:
        self._finish()
        self.subheading = ""
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
        cells = [clean(c) for c in row.strip().strip("|").split("|")]
        self.table_rows += 1
        if is_table_rule(row) or not any(cells):
            if self.table_rows == 2 and self.qas and self.qas[-1] is self.header_pair:  # the row above the rule
                self.qas.pop()  # is the table's header
            return
        kinds = [label_kind(c) if c and len(c) < 20 else None for c in cells]
        if "question" in kinds:
            q = kinds.index("question")
            self.table_columns = (q, kinds.index("answer") if "answer" in kinds else q + 1)
            return
        q, a = self.table_columns or ((1, 2) if len(cells) >= 3 and cells[0].rstrip(".").isdigit() else (0, 1))
        if len(cells) > max(q, a):
            self._ask(cells[q], cells[a])
            self._finish()
            self.header_pair = self.qas[-1] if self.table_rows == 1 and self.qas else None

    def feed(self, line: Line) -> None:
        kind = line.kind
        if kind != "table":
            self.table_rows, self.header_pair = 0, None
        if kind in ("heading", "text") and self.section in ("start", "article") and is_sources_heading(line.text):
            self._finish()
            self.section = "sources"  # a list of sources below the article: no part of it
            return
        if kind in ("blank", "separator"):
            if self.question is not None:
                self.blank_since_answer = bool(self.answer)
                self.blank_since_question = True
            if self.section == "article" and self.article and self.article[-1] != "":
                self.article.append("")
        elif kind == "heading":
            self.subheading = line.text if self.section == "article" and self.article else ""
            if self.section in ("start", "article") and not self.article and not names_article(line.text):
                self.title = line.text
        elif kind == "title":
            self._titled(line)
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
        if line.extra == "both":  # names the article and the pairs
            if self.section == "start" and self.want_article:
                return  # the answer's introduction
            line = line._replace(extra="qa")
        self._finish()
        self.subheading = ""
        self.section = line.extra
        if line.text and line.extra == "article":
            self._article_text(line.text)
        elif line.text and line.extra == "qa":
            self.feed(classify_line(line.text))

    def _titled(self, line: Line) -> None:
        """A title label (``Title: …``), or an article label carrying a title: the title is kept
        for the article that follows."""
        if line.extra:
            self._section(Line("section", "", line.extra))
        if not self.article and WORDS.search(line.text) and not names_article(line.text):
            self.title = line.text

    def _content(self, line: Line) -> None:
        """An unlabelled line: an expected question, an answer, or article text."""
        text = line.text
        if self.expect_question:
            self.question, self.expect_question = text, False
        elif self.section == "answers":
            if self.unanswered:
                self.qas.append({"question": self.unanswered.pop(0), "answer": clean(text)})
        elif self.section == "qa":
            self._qa_text(line)
        elif self.want_article and self.section in ("start", "article"):
            if self.section == "start" and text.rstrip().endswith((":", "：")):
                return  # an introduction above the article
            self.section = "article"
            self._article_text(text)

    def _article_text(self, text: str) -> None:
        """A line of the article, after the title or sub-heading waiting above it."""
        if self.title and not self.article:
            self.article.extend((self.title, ""))
        self.title = ""
        if self.subheading:
            self.article.extend((self.subheading, ""))
            self.subheading = ""
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
        return join_paragraphs(self.article), self.qas, issues


def read_text(text: str, want_article: bool) -> tuple[str, list[dict], list[str]]:
    """(article, pairs, issues of the reading itself) of a free-text answer, line by line."""
    reader = _Reader(want_article)
    for raw in text.split("\n"):
        reader.feed(classify_line(raw))
    return reader.result()
