"""Rule filters: cheap checks on question-answer pairs that return reason codes.

Flags never delete data; the export decides what to drop (``export.drop_flags``).
The codes follow the SK-VQA prompt's own criteria (:data:`vqaflow.pipelines.SKVQA_PROMPT`)
and common practice; the text rules they share with the parser (normalisation, words,
questions) are in :mod:`.text`:

``long_answer``
    The answer has more than ``max_answer_words`` words (criterion 7: "a single word or
    phrase"). A comma-separated list of answers (criterion 7 allows one) is measured per
    item when every item is short (at most :data:`LIST_ITEM_WORDS` words); otherwise the
    whole answer counts. Words are runs of letters/digits (``don't``, ``1,234``,
    ``well-known`` are one word); CJK characters, which are written without spaces,
    count :data:`.text.CJK_CHARS_PER_WORD` characters to a word (the average length of a
    Chinese word), so the default limit of 8 words allows 12 Chinese characters.
``and_or``
    The answer joins answers with "and"/"or" (also "&", "and/or"; Chinese 和, 与, 或, 或者,
    以及, outside the common words that merely contain those characters, such as 共和国,
    和平, 参与, 或许) (criterion 8).
``answer_in_question``
    The answer (every part of a comma-separated answer) is contained in its question,
    ignoring case, punctuation and spacing. Choice questions ("... A or B?", 还是) are
    exempt: there the answer is meant to be one of the options.
``not_a_question``
    The question neither asks nor requests information (:func:`.text.is_question`, the
    parser's own ``not_a_question``): no question mark (? or ？), no clause opening with an
    interrogative or auxiliary word or an imperative such as "Name"/"List" (possibly after
    an "According to the article," clause), and, for Chinese, no question word or particle
    (什么, 哪, 谁, 吗, 呢, ...) and no clause opening with a request (请, 列出, 描述, ...).
``wrong_language``
    Only when ``language`` is set: the question or the answer is mostly written in a
    script other than the language's (a light heuristic by Unicode script, see
    :data:`LANGUAGE_SCRIPTS`; languages that share a script, such as English and French,
    are not told apart). Short Latin answers (at most 3 words: names, codes, text read
    off the image) are tolerated for non-Latin languages.
``duplicate_question``
    The same question (:func:`.text.question_key`) as an earlier pair of the same record.

Questions repeated across records of the same image (``duplicate_question`` again, and
``near_duplicate_question``) need the whole dataset: the finish stage flags them
(:mod:`.questions`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from .text import contains, has_cjk, is_question, nfkc, normalise, question_key, word_count

FLAGS = ("long_answer", "and_or", "answer_in_question", "not_a_question", "wrong_language",
         "duplicate_question")
LIST_ITEM_WORDS = 3

# Scripts (first word of the Unicode character name, "CJK" for Han) each language is written in.
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{code: frozenset({"LATIN"}) for code in (
        "en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "no", "nb", "fi", "pl", "cs", "sk",
        "hu", "ro", "hr", "sl", "tr", "id", "ms", "vi", "ca", "et", "lv", "lt", "sw", "tl")},
    "zh": frozenset({"CJK"}),
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL", "CJK"}),
    **{code: frozenset({"CYRILLIC"}) for code in ("ru", "uk", "bg", "sr", "mk", "be", "kk")},
    "el": frozenset({"GREEK"}),
    "he": frozenset({"HEBREW"}),
    **{code: frozenset({"ARABIC"}) for code in ("ar", "fa", "ur")},
    **{code: frozenset({"DEVANAGARI"}) for code in ("hi", "mr", "ne")},
    "bn": frozenset({"BENGALI"}),
    "ta": frozenset({"TAMIL"}),
    "th": frozenset({"THAI"}),
}

_LIST_SEP = re.compile(r"\s*[,;，；、]\s*")
_AND_OR = re.compile(r"(?:^|\s)(?:and|or|and/or|&)(?=\s|$)", re.IGNORECASE)
_ZH_AND_OR = re.compile(r"以及|或者|[和与或及]")
# Common words that merely contain 和/与/或/及 (and the 以及/或者 conjunctions, matched above).
_ZH_NOT_CONJUNCTION = re.compile(
    "共和|和平|和谐|和睦|和蔼|和煦|和善|和气|和尚|和服|和弦|和声|和约|和解|和局|和田|和风|和美|温和|"
    "柔和|缓和|平和|总和|饱和|调和|中和|附和|暖和|随和|讲和|违和|大和|日和|人和|祥和|融和|"
    "参与|与会|给与|赋与|与其|与否|与众|"
    "或许|或然|"
    "及时|及格|普及|涉及|波及|埃及|提及|危及|顾及|触及|企及|来不及|来得及|不及"
)
_CHOICE = re.compile(r"(?:^|\s)or\s|还是|或者|或是", re.IGNORECASE)


def is_long_answer(answer: str, max_answer_words: int) -> bool:
    parts = [part for part in _LIST_SEP.split(nfkc(answer)) if part.strip()]
    if not parts:
        return False
    counts = [word_count(part) for part in parts]
    if max(counts) > max_answer_words:
        return True
    is_list = len(parts) > 1 and max(counts) <= LIST_ITEM_WORDS
    return not is_list and word_count(answer) > max_answer_words


def has_and_or(answer: str) -> bool:
    text = nfkc(answer)
    if _AND_OR.search(text):
        return True
    if has_cjk(text):
        return bool(_ZH_AND_OR.search(_ZH_NOT_CONJUNCTION.sub("", text)))
    return False


def is_answer_in_question(question: str, answer: str) -> bool:
    if _CHOICE.search(nfkc(question)):
        return False
    haystack = normalise(question)
    parts = [normalise(part) for part in _LIST_SEP.split(nfkc(answer))]
    parts = [part for part in parts if part]
    return bool(parts) and all(contains(part, haystack) for part in parts)


@lru_cache(maxsize=4096)
def _script(ch: str) -> str | None:
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return None
    return name.split(" ", 1)[0]


def _script_share(text: str, scripts: frozenset[str]) -> tuple[int, float, bool]:
    """(letters, share of letters in ``scripts``, all letters Latin)."""
    letters = [ch for ch in nfkc(text) if ch.isalpha()]
    if not letters:
        return 0, 1.0, False
    own = sum(1 for ch in letters if _script(ch) in scripts)
    latin = sum(1 for ch in letters if _script(ch) == "LATIN")
    return len(letters), own / len(letters), latin == len(letters)


def is_wrong_language(text: str, language: str, answer: bool = False) -> bool:
    scripts = language_scripts(language)
    letters, share, all_latin = _script_share(text, scripts)
    if not letters or share >= 0.5:
        return False
    if answer and all_latin and "LATIN" not in scripts and word_count(text) <= 3:
        return False  # a name, a code or text read off the image
    return True


def language_scripts(language: str) -> frozenset[str]:
    """The scripts of a language code ("en", "zh", "zh-CN", "pt_BR", ...); ValueError when unknown."""
    code = language.strip().lower().replace("_", "-").split("-", 1)[0]
    try:
        return LANGUAGE_SCRIPTS[code]
    except KeyError:
        raise ValueError(
            f"filters: unknown language {language!r}; known: {', '.join(sorted(LANGUAGE_SCRIPTS))}"
        ) from None


@dataclass(frozen=True)
class FilterSettings:
    """The ``filters:`` section."""

    max_answer_words: int
    language: str | None


def flag_pair(qa: dict, language: str | None, max_answer_words: int) -> list[str]:
    """The reason codes of one pair (in the order of :data:`FLAGS`), empty when it passes."""
    question = str(qa.get("question") or "")
    answer = str(qa.get("answer") or "")
    flags = []
    if is_long_answer(answer, max_answer_words):
        flags.append("long_answer")
    if has_and_or(answer):
        flags.append("and_or")
    if is_answer_in_question(question, answer):
        flags.append("answer_in_question")
    if not is_question(question):
        flags.append("not_a_question")
    if language and (is_wrong_language(question, language)
                     or is_wrong_language(answer, language, answer=True)):
        flags.append("wrong_language")
    return flags


def flag_record(qas: list[dict], language: str | None, max_answer_words: int) -> list[list[str]]:
    """:func:`flag_pair` for every pair, plus ``duplicate_question`` for a pair whose
    question repeats an earlier pair's (the first occurrence is not flagged)."""
    seen: set[str] = set()
    result = []
    for qa in qas:
        flags = flag_pair(qa, language, max_answer_words)
        key = question_key(str(qa.get("question") or ""))
        if key and key in seen:
            flags.append("duplicate_question")
        seen.add(key)
        result.append(flags)
    return result

