"""ScaleCap's text work (DataFlow-MM's ``ImageScaleCaptionPipeline``, ``ImageScaleCaptionPrompt``):
its prompts (upstream's words, Python-source indentation removed), the caption's sentences
(:func:`split_sentences`), yes/no answers read strictly (:func:`read_verdict`), the detail
questions named in the question step's answer (:func:`detail_questions`: objects, then each
one's position twin) and the two text-only prompts (:func:`questions_prompt`, :func:`fusion_prompt`).
:mod:`.scale_caption` runs them as the pipeline's steps.
"""

from __future__ import annotations

import re

from ..quality.parse import read_plain

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
    for line in read_plain(text).splitlines():
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
    text = read_plain(text)
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
    segments = _DETAIL.split(read_plain(text))[1:]
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
