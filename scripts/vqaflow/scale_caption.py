"""ScaleCap dense captioning (DataFlow-MM's ``ImageScaleCaptionPipeline``): its prompts and the
pure work between its requests.

The steps: a fine-grained caption (with the image) -> its sentences (:func:`split_sentences`)
-> a yes/no check of each sentence (with the image) -> the golden sentences -> one text-only
request turning them into "Describe more details about the [Object]." instructions
(:func:`detail_questions`: at most ``max_questions`` objects, each with its position twin) ->
each question answered with the image -> a yes/no check of each answer (with the image) -> one
text-only request fusing the golden sentences and the kept details (:func:`fusion_prompt`).
The prompts are upstream's words (Python-source indentation removed).

"ok means right" (:func:`assemble`): a yes/no answer counts as yes only when it clearly is
(:func:`read_verdict`); anything else is not supported and recorded as ``unclear``. Issue codes:

- ``truncated``: an answer was cut off at ``max_tokens``: a caption's unfinished last sentence and
  a question step's unfinished last instruction are dropped, a cut check counts as ``unclear``,
  a cut detail is not checked, a cut final caption is kept.
- ``empty_caption`` / ``empty_final_caption``: the caption or the fused caption is empty.
- ``unclear_verdict``: a yes/no answer neither clearly yes nor clearly no.
- ``no_golden_sentences``: no sentence of the caption was supported.
- ``no_questions``: the question step named no object.
- ``empty_answer``: a detail question got an empty answer (not checked).
- ``no_pairs``: no detail answer passed its check.

Status: ``ok`` without issues, ``none`` with neither a final caption nor a kept pair, else ``partial``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .quality.parse import Parse, strip_template

SYSTEM_PROMPT = "You are a helpful assistant."
CAPTION_PROMPT = (
    "Describe the fine-grained content of the image, including scenes, objects, "
    "relationships, instance location, and any text present."
)
SENTENCE_CHECK_PROMPT = (
    "Given the image, is the description '{text}' directly supported by visual evidence? "
    "Answer strictly yes or no."
)
DETAIL_CHECK_PROMPT = (
    "Given the image, is the statement '{text}' grounded in the image and not generic? "
    "Answer strictly yes or no."
)
QUESTIONS_PROMPT = (
    "Your task is to convert each Object mentioned in a given sentence into a corresponding "
    "instruction, and all the resulting instructions are output as \"Describe more details about "
    "the [Object]\". Ensure your instructions do not cover the raw question, options, or thought "
    "process of answering the instructions. You should ignore the Objects that appear in some "
    "inferences, such as the sentences that begins with 'it might be' or 'there are probably'.\n"
    "\n"
    "Sentence:\n"
    "The image depicts a man in a suit and tie jumping in the air above a bed in a bedroom\n"
    "Instructions:\n"
    "Describe more details about the man.\n"
    "Describe more details about the suit.\n"
    "Describe more details about the tie.\n"
    "Describe more details about the bed.\n"
    "Describe more details about the bedroom.\n"
    "\n"
    "Sentence:\n"
    "{sentence}\n"
    "Instructions:"
)
FUSION_PROMPT = (
    "Basic Context:\n{context}\n\nObject Information:\n{object_info}\n\n"
    "Position Information:\n{position_info}\n\n"
    "Following the logic of the above Basic Context, organize all details provided in Object "
    "Information and Position Information to give a very comprehensive description about the image. "
    "Do not include any analysis or your opinions."
)
OBJECT_QUESTION = "Describe more details about"
POSITION_QUESTION = "Describe more details about the position of"

# -- sentences ---------------------------------------------------------------------------------------

_CLOSERS = re.escape("\"'”’)]」』）")
_ENDING = re.compile(rf"[.!?]+[{_CLOSERS}]*(?=\s)|[。！？]+[{_CLOSERS}]*")
_ENDED = re.compile(rf"(?:[.!?]|[。！？])[{_CLOSERS}]*$")
_LAST_WORD = re.compile(r"(\w+(?:\.\w+)*)$")
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr prof mt ft vs etc e.g i.e approx fig no inc ltd co".split())
_MARKER = re.compile(r"^(?:#{1,6}\s+|[-*•+]\s+|\(?\d{1,3}[.)]\s+)")
_EMPHASIS = re.compile(r"\*\*|__")


def _ends_here(text: str, start: int, end: int) -> bool:
    """Whether the sentence mark at ``text[start:end]`` ends a sentence (not ``Mr.``, ``e.g. a``)."""
    if text[start] in "。！？":
        return True
    following = text[end:].lstrip()[:1]
    if following.islower():
        return False
    if text[start] != ".":
        return True
    word = _LAST_WORD.search(text[:start])
    return word is None or not (word.group(1).lower() in _ABBREVIATIONS or (len(word.group(1)) == 1
                                                                             and word.group(1).isupper()))


def _line_sentences(line: str) -> list[str]:
    """The sentences of one line of text."""
    found, start = [], 0
    for mark in _ENDING.finditer(line):
        if _ends_here(line, mark.start(), mark.end()):
            found.append(line[start:mark.end()].strip())
            start = mark.end()
    found.append(line[start:].strip())
    return [sentence for sentence in found if sentence]


def _heading(line: str, bare: str) -> bool:
    """Whether a line is a heading (``# Scene``, ``**Objects**``, ``Objects:``), not a sentence."""
    whole_bold = line.startswith(("**", "__")) and line.endswith(("**", "__", "**:", "__:"))
    return line.startswith("#") or whole_bold or (bare.endswith((":", "：")) and len(bare.split()) <= 6)


def split_sentences(text: str) -> list[str]:
    """The sentences of a caption: split after ``.``, ``!``, ``?`` before a space (not after an
    abbreviation, an initial, or before a lowercase word), after ``。！？``, and at line breaks;
    list markers and bold marks removed, headings dropped."""
    sentences = []
    for line in strip_template(text).splitlines():
        line = line.strip()
        bare = _EMPHASIS.sub("", _MARKER.sub("", line)).strip()
        if bare and not _heading(line, bare):
            sentences.extend(_line_sentences(bare))
    return sentences


def finished(sentence: str) -> bool:
    """Whether a sentence ends with a sentence mark (else an answer cut off may have cut it)."""
    return _ENDED.search(sentence.rstrip()) is not None


# -- yes or no ---------------------------------------------------------------------------------------

_LEAD = re.compile(r"^[\s*_`\"'“”‘’\[\](){}<>#-]*(?:(?:final\s+)?answer\s*[:：]|答案?\s*[:：])?[\s*_`\"'“”‘’\[\](){}<>]*",
                   re.IGNORECASE)
_VERDICT = re.compile(r"^(?:(yes)|(no))(?![\w'’-])|^(?:(是的|是|对)|(不是|否|不|没有))(?![\u4e00-\u9fff])",
                      re.IGNORECASE)
_HEDGE = re.compile(
    r"\b(?:but|however|although|though|except|partially|partly|mostly|largely|somewhat|unclear|uncertain|"
    r"possibly|probably|might|may|cannot|can't|not\s+(?:entirely|fully|completely|exactly|clearly|directly))\b|"
    r"(?:\bor\s+|/\s*)(?:yes|no)\b|但|不过|然而|部分|可能|大致|基本上|不完全|无法|或",
    re.IGNORECASE)


def read_verdict(text: str, finish_reason: str | None = None) -> str:
    """``yes`` or ``no`` when a yes/no answer clearly is one (its first word, after a label and
    markup; a yes with a hedge such as "but" or "partially" is not clear), else ``unclear``; an
    answer cut off at ``max_tokens`` is ``unclear``."""
    if finish_reason == "length":
        return "unclear"
    text = strip_template(text).strip()
    text = text[_LEAD.match(text).end():]
    verdict = _VERDICT.match(text)
    if verdict is None:
        return "unclear"
    if verdict.group(2) or verdict.group(4):
        return "no"
    return "unclear" if _HEDGE.search(text[verdict.end():]) else "yes"


# -- questions and fusion ----------------------------------------------------------------------------

_DETAIL = re.compile(r"describe\s+more\s+details\s+about\s+", re.IGNORECASE)
_POSITION_OF = re.compile(r"^the\s+position\s+of\s+", re.IGNORECASE)
_OBJECT_EDGES = "\"'“”‘’`*_[]()<>「」 \t.,;:!?。，；：！？"


def _object(segment: str) -> tuple[str, bool]:
    """The object named after "Describe more details about" (up to its sentence's end) and
    whether its instruction ended (a sentence mark or a line break after it)."""
    line, _, rest = segment.partition("\n")
    sentences = _line_sentences(_EMPHASIS.sub("", line).strip()) or [""]
    first = sentences[0]
    ended = bool(rest) or len(sentences) > 1 or finished(first)
    name = _POSITION_OF.sub("", first.strip(_OBJECT_EDGES)).strip(_OBJECT_EDGES)
    return name, ended


def detail_questions(text: str, max_questions: int, finish_reason: str | None = None) -> list[str]:
    """The detail questions of the question step's answer: "Describe more details about X." for
    each object X it names (first mention kept, at most ``max_questions``), then each one's twin
    "Describe more details about the position of X."; an unfinished last instruction of an
    answer cut off at ``max_tokens`` is dropped."""
    segments = _DETAIL.split(strip_template(text))[1:]
    objects: dict[str, str] = {}
    for n, segment in enumerate(segments):
        name, ended = _object(segment)
        if not name or (finish_reason == "length" and n == len(segments) - 1 and not ended):
            continue
        objects.setdefault(name.casefold(), name)
    chosen = list(objects.values())[:max_questions]
    return [f"{OBJECT_QUESTION} {name}." for name in chosen] + [f"{POSITION_QUESTION} {name}." for name in chosen]


def is_position_question(question: str) -> bool:
    """Whether a detail question is a position twin."""
    return question.startswith(POSITION_QUESTION)


def questions_prompt(golden: list[str]) -> str:
    """The text-only request for detail instructions about the golden sentences' objects."""
    return QUESTIONS_PROMPT.format(sentence="\n".join(golden))


def fusion_prompt(golden: list[str], qas: list[dict]) -> str:
    """The text-only request fusing the golden sentences (the context) with the kept details:
    answers to object questions as the object information, to position twins as the position
    information."""
    objects = [qa["answer"] for qa in qas if not is_position_question(qa["question"])]
    positions = [qa["answer"] for qa in qas if is_position_question(qa["question"])]
    return FUSION_PROMPT.format(context="\n".join(golden), object_info="\n".join(objects),
                                position_info="\n".join(positions))


# -- a record through the steps ----------------------------------------------------------------------

STEPS = ("caption", "sentence_checks", "questions", "details", "detail_checks", "fusion")
STEP_IMAGES = {"caption": True, "sentence_checks": True, "questions": False, "details": True,
               "detail_checks": True, "fusion": False}  # whether the record's images go with the step


@dataclass(frozen=True)
class Reply:
    """One answer: its text and the backend's finish reason (``length``: cut off at ``max_tokens``)."""

    text: str
    finish_reason: str | None = None

    @property
    def cut(self) -> bool:
        """Whether the answer was cut off at ``max_tokens``."""
        return self.finish_reason == "length"

    @property
    def clean(self) -> str:
        """The text without chat-template tokens and reasoning, stripped."""
        return strip_template(self.text).strip()


@dataclass
class _Record:
    """What a record's replies so far give (each step's part filled once its replies are in)."""

    caption: str = ""
    sentences: list[str] | None = None
    verdicts: list[str] | None = None
    questions: list[str] | None = None
    answers: list[str] | None = None  # the detail answers, aligned with ``questions``
    checked: list[int] | None = None  # the indices of the answers asked to check
    detail_verdicts: list[str] | None = None  # aligned with ``checked``
    issues: list[str] | None = None

    @property
    def golden(self) -> list[str]:
        """The sentences checked yes."""
        return [s for s, v in zip(self.sentences or [], self.verdicts or []) if v == "yes"]

    def kept(self) -> list[dict]:
        """The detail pairs checked yes."""
        return [{"question": self.questions[i], "answer": self.answers[i]}
                for i, v in zip(self.checked or [], self.detail_verdicts or []) if v == "yes"]


def _fanned(replies: dict[str, list[Reply]], step: str, asked: int) -> list[Reply] | None:
    """A step's replies (none for a step of no requests), or None while the step is not answered
    (raises when the count is wrong)."""
    if step not in replies:
        return None if asked else []
    if len(replies[step]) != asked:
        raise ValueError(f"{step}: {len(replies[step])} replies to {asked} requests")
    return replies[step]


def _read_caption(record: _Record, caption: Reply) -> None:
    record.caption = caption.clean
    if caption.cut:
        record.issues.append("truncated")
    if not record.caption:
        record.issues.append("empty_caption")
    sentences = split_sentences(record.caption)
    if caption.cut and sentences and not finished(sentences[-1]):
        sentences = sentences[:-1]
    record.sentences = sentences


def _read_checks(replies: list[Reply], issues: list[str]) -> list[str]:
    """The verdicts of a check step's replies (issues added)."""
    verdicts = [read_verdict(reply.text, reply.finish_reason) for reply in replies]
    if any(reply.cut for reply in replies):
        issues.append("truncated")
    if "unclear" in verdicts:
        issues.append("unclear_verdict")
    return verdicts


def _read_details(record: _Record, replies: list[Reply]) -> None:
    record.answers = [reply.clean for reply in replies]
    record.checked = [i for i, (answer, reply) in enumerate(zip(record.answers, replies)) if answer and not reply.cut]
    if any(reply.cut for reply in replies):
        record.issues.append("truncated")
    if not all(record.answers):
        record.issues.append("empty_answer")


def _derive(replies: dict[str, list[Reply]], max_questions: int) -> _Record:
    """What a record's replies so far give, step by step (a step's part stays None until its
    replies are in and every step it rests on is answered)."""
    record = _Record(issues=[])
    caption = _fanned(replies, "caption", 1)
    if caption is None:
        return record
    _read_caption(record, caption[0])
    checks = _fanned(replies, "sentence_checks", len(record.sentences))
    if checks is None:
        return record
    record.verdicts = _read_checks(checks, record.issues)
    if not record.golden:
        if record.caption:
            record.issues.append("no_golden_sentences")
        return record
    questions = _fanned(replies, "questions", 1)
    if questions is None:
        return record
    if questions[0].cut:
        record.issues.append("truncated")
    record.questions = detail_questions(questions[0].text, max_questions, questions[0].finish_reason)
    if not record.questions:
        record.issues.append("no_questions")
    details = _fanned(replies, "details", len(record.questions))
    if details is None:
        return record
    _read_details(record, details)
    detail_checks = _fanned(replies, "detail_checks", len(record.checked))
    if detail_checks is not None:
        record.detail_verdicts = _read_checks(detail_checks, record.issues)
    return record


def step_prompts(step: str, replies: dict[str, list[Reply]], max_questions: int) -> list[str]:
    """The user texts of a record's requests for ``step`` (in :data:`STEPS`), given the replies
    of the steps before it (by step name, one per request); none when the record stops before."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r} (known: {', '.join(STEPS)})")
    if step == "caption":
        return [CAPTION_PROMPT]
    record = _derive({name: replies[name] for name in STEPS[:STEPS.index(step)] if name in replies},
                     max_questions)
    if step == "sentence_checks":
        return [SENTENCE_CHECK_PROMPT.format(text=s) for s in record.sentences or []]
    if step == "questions":
        return [questions_prompt(record.golden)] if record.golden else []
    if step == "details":
        return list(record.questions or [])
    if step == "detail_checks":
        return [DETAIL_CHECK_PROMPT.format(text=record.answers[i]) for i in record.checked or []]
    return [fusion_prompt(record.golden, record.kept())] if record.detail_verdicts is not None else []


@dataclass(frozen=True)
class ScaleCaption:
    """A record's ScaleCap outputs; ``parse.qas`` holds the kept detail pairs."""

    init_caption: str
    sentences: list[dict]  # every sentence of the caption: {"text", "verdict"}
    golden_sentences: list[str]
    questions: list[str]
    details: list[dict]  # every detail question: {"question", "answer", "verdict"} ("unchecked": empty or cut)
    final_caption: str
    parse: Parse


def assemble(replies: dict[str, list[Reply]], max_questions: int) -> ScaleCaption:
    """A record's outputs from its replies (by step name; a step the record stopped before is
    absent), with the status and issues of the module docstring."""
    record = _derive(replies, max_questions)
    final = _fanned(replies, "fusion", 1) if record.detail_verdicts is not None else None
    final_caption = final[0].clean if final else ""
    issues = record.issues
    if final and final[0].cut:
        issues.append("truncated")
    if final and not final_caption:
        issues.append("empty_final_caption")
    qas = record.kept()
    if record.detail_verdicts is not None and not qas:
        issues.append("no_pairs")
    verdicts = dict(zip(record.checked or [], record.detail_verdicts or []))
    details = [{"question": q, "answer": a, "verdict": verdicts.get(i, "unchecked")}
               for i, (q, a) in enumerate(zip(record.questions or [], record.answers or []))]
    status = "ok" if not issues else "partial" if (final_caption or qas) else "none"
    parse = Parse(None, qas, status, tuple(dict.fromkeys(issues)), "truncated" in issues)
    sentences = [{"text": s, "verdict": v} for s, v in zip(record.sentences or [], record.verdicts or [])]
    return ScaleCaption(record.caption, sentences, record.golden, list(record.questions or []), details,
                        final_caption, parse)
