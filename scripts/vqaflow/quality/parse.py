"""Parsing raw model answers into an article (when asked for) and question-answer pairs.

:func:`parse_answer` reads JSON answers (:mod:`.answer_json`) and free text line by line
(:mod:`.answer_lines` classifies each line, :mod:`.answer_reader` assembles the article and
the pairs); article lines and paragraphs are joined by a single space (by nothing between two
CJK characters). :func:`read_json` gives the first JSON value of any answer.

Status is honest: ``ok`` only when pairs were found (and an article, when wanted), every word
of the answer is accounted for (:mod:`.accounting`: each is in a field, or is markup, a label, a
heading, a remark or chatter; docs/quality.md, "What ok means") and no self-check raised an
issue; ``none`` when nothing usable was found; else ``partial``. ``Parse.unread`` holds the text
that was neither read nor recognised, shortened.
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
  imperative opening (``what``, ``is``, ``name``, ``list``, ``吗``, ``什么``, ``请`` …; one rule with
  the rule filters: :func:`.text.is_question`).
- ``incomplete_pair``: a pair cut off at the end of the text or of cut-off JSON (dropped).
- ``unanswered_question``: a question without an answer before the end, or a JSON item
  without both question and answer (dropped).
- ``orphan_answer``: an answer with no question before it (dropped).
- ``partial_json``: the JSON was cut off or malformed around what was read; only complete
  pairs are kept.
- ``unread_text``: text that is neither a field nor recognised as markup, a label, a heading, a
  remark or chatter (``Parse.unread`` shows it).
- ``markup_in_text``: a field holds markup (emphasis, backticks, a heading mark, a tag, JSON
  quoting, a leading bullet or number, quotes around it) or words not in the answer as accounted.
- ``joined_lines``: a question or answer runs on to a next line that neither continues its
  sentence nor is a list item.
- ``question_in_answer``: an answer holds a question mark (``three people. what are they
  wearing? orange life jackets``): a pair run into the answer, or a question in the answer.
- ``two_questions``: a question holds two questions, each with its own question mark (``What
  is on the table? / 桌子上有什么？``): one pair or two is a guess.
- ``refusal``: an answer that declines to answer (``I cannot …``, ``抱歉 …``).
- ``explanation_in_answer``: an answer still cites its source (``According to the article,
  1420``, ``文中提到…``) once a closing remark that cites it (``1420 (according to the
  article)``, ``1889 — as stated in the second paragraph``) is taken off; or it closes with an
  aside of four words or more in brackets or after a spaced dash (``three (two on the left and
  one on the right)``, :func:`.text.closing_aside`); or, with an article,
  the answer is not found in it while its opening part is (``330 metres — roughly an 81-storey
  building``, :func:`.grounding.opens_grounded`): which words are the answer is a guess. A
  closing remark is not part of the answer (:func:`.text.split_remark`: a citation, or a
  justification after a spaced dash) and the accounting reads it as a remark.

The label checks (``label_in_question``, ``label_in_answer``, ``article_chatter``) also fire for a
label inside a field (``Explanation:``, ``Antwort:``) or between two parts of one field.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .accounting import account
from .answer_json import JsonRead, json_strings, json_values, pairs_from_json
from .answer_lines import ANSWER_ROOTS, QUESTION_ROOTS, chatty, label_kind, read_label
from .answer_reader import read_text
from .grounding import openings_grounded
from .text import cites_source, closing_aside, has_cjk, is_question, split_remark

LABEL_WORDS = frozenset(root for root in QUESTION_ROOTS | ANSWER_ROOTS if not has_cjk(root))  # any alphabet
LABEL_INITIALS = frozenset(word[0] for word in LABEL_WORDS)
LABEL_FIRST_CHARS = frozenset("问答提回解题質問질답정[【(（-•+>*#0123456789")
LETTERS = re.compile(r"[^\W\d_]+")
LOOSE_LABEL = re.compile(  # a label word and a colon a few words later ("Question one: …")
    r"[\[【(（*_\s]*(?:question|ques|query|answer|ans|response|q|a|问题|问|答案|答|回答)(?:\s*\d{1,3})?\b[^:：?？\n]{0,12}[:：]",
    re.IGNORECASE)
CHATTER_INSIDE = ("let me know", "hope this helps", "feel free to", "如有", "希望这些")
META = re.compile(  # an article that talks about the task, not the subject
    r"\b(?:this article|the following questions|the questions below|question-answer pairs?|qa pairs)\b", re.IGNORECASE)
LABEL_INSIDE = re.compile(
    r"\b(?:[Qq]uestion|[Aa]nswer|Q|A|(?i:frage|antwort|pregunta|respuesta|domanda|risposta|pergunta|resposta|"
    r"réponse|reponse|vraag|antwoord|вопрос|ответ))\s*\d*\s*[:：]\s|(?:问题|答案|问|答|質問|回答|答え|질문|답변|정답)\s*\d*\s*[:：]")
REMARK_INSIDE = re.compile(  # an explanation or source label inside a question or answer
    r"\b(?:explanation|reason|rationale|evidence|source|note)\s*[:：]|(?:解释|解析|理由|说明|来源|依据)\s*[:：]", re.IGNORECASE)
REFUSAL = re.compile(  # an answer that declines to answer
    r"\b(?:i'm sorry|i am sorry|i cannot|i can't|i can not|i'm unable|i am unable|i'm not able|i am not able|"
    r"cannot be determined|can't be determined|not possible to (?:determine|tell|say))\b|"
    r"抱歉|对不起|我无法|我不能|无法确定|无法判断|无法识别|无法回答|不能确定", re.IGNORECASE)
SPECIAL_TOKEN = re.compile(  # <|im_start|>assistant, <|eot_id|>, </s>
    r"<\|start_header_id\|>\w*<\|end_header_id\|>|<\|im_start\|>\w*|<\|[\w-]{1,30}\|>|</?s>")
MARKUP = re.compile(  # markup left in a field: emphasis, code, headings, tags, JSON, table rules, bullets, links
    r"\*\*|__|`|^#{1,6}\s|</?[A-Za-z][\w-]*>|^[{\[]\s*[\"']|[\"']\s*:\s*[\"'{\[]|\|\s*:?-{3,}|^[-•+>*]\s|"
    r"^\(?\d{1,3}[.)]\s|^\"[^\"]*\"$|^'[^']*'$|\]\([^)\s]+\)")
QUESTION_MARK = re.compile(r"[?？]")
QUOTES = {'"': '"', "“": "”", "„": "“", "'": "'", "‘": "’", "「": "」", "『": "』", "«": "»"}  # opening: closing
THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Parse:
    """What was read from one answer."""

    context: str | None  # None when the article was not asked for
    qas: list[dict]  # [{"question": str, "answer": str}]
    status: str  # "ok" | "partial" | "none"
    issues: tuple[str, ...] = ()
    truncated: bool = False
    unread: tuple[str, ...] = ()  # text neither read nor recognised (``unread_text``), shortened
    fields: dict = dataclasses.field(default_factory=dict)  # a pipeline's output fields (``caption``, ...), by name


def _strip_template(text: str) -> str:
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


def read_json(text: str) -> object | None:
    """The first JSON object or array in an answer (fenced, bare, after chatter or cut off), else None."""
    if "{" not in text and "[" not in text:
        return None
    return next((value for value, _, _, _ in json_values(_strip_template(text))), None)


# -- self-checks -----------------------------------------------------------------------------------

def _starts_with_label(text: str) -> bool:
    """Whether a question or answer still starts with a question or answer label."""
    first = text[:1].lower()
    if first.isalpha() and not has_cjk(first):
        if first not in LABEL_INITIALS or LETTERS.match(text).group().lower() not in LABEL_WORDS:
            return False
    elif first not in LABEL_FIRST_CHARS:
        return False
    return read_label(text)[0] in ("question", "answer") or LOOSE_LABEL.match(text) is not None


def _holds_label(text: str) -> bool:
    """Whether a question or answer holds a question, answer or remark label (``… Answer: …``)."""
    return (":" in text or "：" in text) and (LABEL_INSIDE.search(text) or REMARK_INSIDE.search(text)) is not None


def _label_only(text: str) -> bool:
    if len(text) > 12:
        return False
    key = text.lower().strip(" .:：-–—*")
    return not key or (len(key) <= 8 and label_kind(key) in ("question", "answer", "answers"))


def _two_questions(question: str) -> bool:
    """Whether a question holds two questions, each closed by its own question mark ("What is on
    the table? / 桌子上有什么？", "What is it? What colour is it?"): one pair or two is a guess."""
    first = QUESTION_MARK.search(question)
    rest = question[first.end():].strip(" /|-–—") if first else ""
    return bool(rest) and QUESTION_MARK.search(rest) is not None and is_question(rest)


def _unquoted(answer: str) -> str:
    """An answer without the quotes around all of it (``"Trattoria da Mario"``, ``「出口」``)."""
    if len(answer) > 2 and QUOTES.get(answer[0]) == answer[-1] and answer[0] not in answer[1:-1] \
            and answer[-1] not in answer[1:-1]:
        return answer[1:-1].strip()
    return answer


def check_pairs(qas: list[dict], issues: list[str]) -> list[dict]:
    """The pairs with empty or label-only answers dropped, a closing remark citing the source and
    quotes around a whole answer taken off; issues found added."""
    kept = []
    for qa in qas:
        question, answer = qa["question"], _unquoted(split_remark(qa["answer"])[0])
        qa = {"question": question, "answer": answer}
        if _label_only(answer):
            issues.append("empty_answer")
            continue
        if _starts_with_label(question) or _holds_label(question):
            issues.append("label_in_question")
        if _starts_with_label(answer) or _holds_label(answer):
            issues.append("label_in_answer")
        if MARKUP.search(question) or MARKUP.search(answer):
            issues.append("markup_in_text")
        if REFUSAL.search(answer.lower().replace("’", "'")):
            issues.append("refusal")
        if not is_question(question):
            issues.append("not_a_question")
        elif _two_questions(question):
            issues.append("two_questions")
        if cites_source(answer) or closing_aside(answer):
            issues.append("explanation_in_answer")
        if QUESTION_MARK.search(answer):
            issues.append("question_in_answer")
        kept.append(qa)
    return kept


def _accounting_issues(accounted: str, context: str | None, qas: list[dict], structured: bool,
                       issues: list[str]) -> tuple[str, ...]:
    """Account for every word of the answer (:mod:`.accounting`): issues added, unread spans returned."""
    found = account(accounted, context, qas, structured)
    if found.unread:
        issues.append("unread_text")
    if found.foreign:
        issues.append("markup_in_text")
    for field in sorted(found.labelled):
        issues.append("article_chatter" if field == 0 else "label_in_question" if field % 2 else "label_in_answer")
    if found.joined:
        issues.append("joined_lines")
    return found.unread


def _article_issue(article: str) -> bool:
    """Whether the article starts with chatter or a label, or holds a label or ends with chatter."""
    if chatty(article):
        return True
    marked = ":" in article or "：" in article or "]" in article[:48] or "】" in article[:48]
    if marked and (read_label(article)[0] is not None or LABEL_INSIDE.search(article)):
        return True
    if META.search(article):
        return True
    ending = article[-150:].lower()
    for phrase in CHATTER_INSIDE:
        if phrase in ending:
            return True
    return False


# -- public API ------------------------------------------------------------------------------------

def read_plain(text: str) -> str:
    """A free-text output (a caption, one question, one answer) without chat-template tokens or
    reasoning, stripped."""
    return _strip_template(text).strip()


def plain_issues(text: str) -> list[str]:
    """What the checks find in a free-text output: ``chatter`` (it opens with the model's chatter,
    "Sure! Here is …"), ``markup_in_text`` (markdown, tags, JSON quoting), ``refusal``."""
    issues = []
    if chatty(text):
        issues.append("chatter")
    if any(MARKUP.search(line.strip()) for line in text.splitlines()):
        issues.append("markup_in_text")
    if REFUSAL.search(text.lower().replace("’", "'")):
        issues.append("refusal")
    return issues


def _accounted(text: str, parsed: JsonRead | None) -> str:
    """The answer as its words are accounted: a JSON value by its strings, one a line."""
    if parsed is None or parsed.value is None:
        return text
    strings = "\n".join(json_strings(parsed.value))
    return f"{text[:parsed.start]}\n{strings}\n{text[parsed.end:]}"


def accounted_text(text: str) -> str:
    """An answer as the parser accounts for its words: chat-template tokens and reasoning
    removed, a JSON value by its strings, one a line (keys, syntax and a pair's metadata are
    markup)."""
    text = _strip_template(text)
    return _accounted(text, pairs_from_json(text) if ("{" in text or "[" in text) else None)


def parse_answer(text: str, want_article: bool, finish_reason: str | None = None) -> Parse:
    """Read a model's answer: the article (when ``want_article``) and the question-answer pairs,
    with an honest status and the issues found (see the module docstring)."""
    text = _strip_template(text)
    parsed = pairs_from_json(text) if ("{" in text or "[" in text) else None
    accounted = _accounted(text, parsed)
    if parsed is not None:
        context, qas, issues = parsed.context, parsed.qas, parsed.issues
        if want_article and not context:
            context = read_text(text[:parsed.start], True)[0]
    else:
        context, qas, issues = read_text(text, want_article)
    truncated = finish_reason == "length"
    if truncated and qas and parsed is None and text.rstrip().endswith(qas[-1]["answer"][-8:]):
        qas = qas[:-1]  # the last answer ran into max_tokens: it may be cut
        issues.append("incomplete_pair")
    qas = check_pairs(qas, issues)
    if truncated:
        issues.insert(0, "truncated")
    if not qas:
        issues.append("no_pairs")
    if want_article and not context:
        issues.append("no_article")
    elif want_article and (_article_issue(context) or MARKUP.search(context)):
        issues.append("article_chatter" if _article_issue(context) else "markup_in_text")
    if want_article and context and any(openings_grounded(qas, context)):
        issues.append("explanation_in_answer")
    unread = _accounting_issues(accounted, context if want_article else None, qas, parsed is not None, issues)
    status = "ok" if not issues else "partial" if (qas or (want_article and context)) else "none"
    truncated = truncated or "partial_json" in issues or "incomplete_pair" in issues
    return Parse(context if want_article else None, qas, status, tuple(dict.fromkeys(issues)), truncated,
                 unread)
