"""The one text module of quality, used by the parser, the rule filters and the judge:
normalisation (NFKC, case, spacing), CJK detection, word counts, what counts as a question,
question dedup keys and tokens, citations of the source in an answer, and values of
model-written objects by key name.

What counts as a question (:func:`is_question`, the parser's and the filters' ``not_a_question``):
a question mark (``?`` or ``？``); a clause opening with an interrogative or auxiliary word, a
negative contraction or an imperative asking for information (``What``, ``What's``, ``Is``,
``Isn't``, ``Name``, ``List``, ``Describe`` ...; a preposition only when an interrogative follows
soon: ``In which year``, ``According to the article, when``); for Chinese a question word or
particle anywhere (什么, 哪, 谁, 几, 多少, 吗, 呢, 请问 ...) or a clause opening with a request
(请, 列出, 说出, 描述, 指出 ...).
"""

from __future__ import annotations

import math
import re
import unicodedata

CJK_CHARS_PER_WORD = 1.5
CJK_LETTERS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"  # kana, Han
CJK_MARKS = "\u2e80-\u2fff\u3000-\u303f\u3100-\u33ff\uff00-\uffef"  # radicals, CJK and full-width punctuation
_CJK_LETTER = re.compile(f"[{CJK_LETTERS}]")
_CJK_CHAR = re.compile(f"[{CJK_LETTERS}{CJK_MARKS}]")
_CJK_RUN = re.compile(f"[{CJK_LETTERS}]+")
_CJK_SPACING = re.compile(rf"\s*([{CJK_LETTERS}])\s*")
_NOT_WORD = re.compile(r"[^\w\s]|_")  # punctuation and symbols
_WORD = re.compile(rf"(?:(?![{CJK_LETTERS}])[^\W_])+(?:['’.,\-](?:(?![{CJK_LETTERS}])[^\W_])+)*")

_INTERROGATIVES = frozenset(
    "what which who whom whose when where why how whether is are was were am do does did can "
    "could will would shall should may might must has have had isn't aren't wasn't weren't "
    "doesn't don't didn't can't couldn't won't wouldn't shouldn't hasn't haven't "
    "name list identify state give tell describe explain find determine count estimate "
    "mention provide compare specify".split()
)
# Prepositions open a question only when an interrogative follows soon ("In which year ...").
_PREPOSITIONS = frozenset("according in on at from to by for during into of under".split())
_ZH_QUESTION = re.compile(
    "什么|甚么|哪|谁|几|多[少高大长远久重深宽老]|怎么|怎样|为什么|为何|是否|如何|何|吗|嗎|呢|吧|是不是|有没有|能否|请问"
)
_ZH_REQUESTS = ("请", "列出", "列举", "说出", "写出", "指出", "找出", "给出", "描述", "解释", "识别", "比较", "估计")
_CLAUSE = re.compile(r"[,:;，：；]\s*")
_INDEX_TEXT = re.compile(r"^\s*(?:#|no\.?|q|qa|pair|question)?\s*(\d+)\s*[.):]?\s*$", re.IGNORECASE)
_CLAUSE_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
# A citation of the source: "according to the article", "as stated in the second paragraph",
# "(see paragraph 2)", "the passage says", "根据文章", "文中提到". An answer is a phrase from the
# article, never a reference to it.
_SOURCE = (r"(?:(?:the|this|that)\s+)?(?:(?:first|second|third|fourth|fifth|last|final|opening|same|previous|"
           r"above|\d{1,2}(?:st|nd|rd|th)?)\s+)?(?:article|passage|paragraph|wikipedia(?:\s+article)?|context|"
           r"text|entry|section|source|document)s?\b")
_CITATION = (
    rf"(?:(?:according to|as\s+(?:\w+\s+){{0,2}}(?:in|by)|(?:stated|mentioned|noted|described|given|found|cited|"
    rf"written|said|explained|shown|listed|indicated|reported|named|specified|taken|quoted)\s+(?:in|by|from))\s+|"
    rf"(?:from|see|per|cf\.?|based on|in)\s+(?=(?:the\s+)?(?:\w+\s+)?(?:article|passage|paragraph|wikipedia)))"
    rf"{_SOURCE}|(?:as\s+)?(?:the|this)\s+(?:article|passage|paragraph)\s+[a-z]+s\b|"
    rf"(?:as\s+)?(?:the|this)\s+(?:article|passage|text|paragraph|context)\s+(?:says|said|states|stated|mentions|"
    r"mentioned|notes|noted|describes|indicates|explains|reports|names|lists)\b|sources?\s*[:：]|"
    r"(?:根据|依据|据|按照)(?:文章|文中|原文|上文|材料|文本|段落|第.{1,3}段|百科)|(?:文中|文章中?|原文|上文)(?:提到|所述|指出|称|写道|"
    r"记载|说明)|如文中|见(?:第.{1,3}段|文章|原文)|参见|出自|来源\s*[:：]")
_CITES = re.compile(_CITATION, re.IGNORECASE)
_OPENS_CITATION = re.compile(rf"[\s\W_]*(?:{_CITATION})", re.IGNORECASE)
_SPACED_DASH = re.compile(r"\s+(?:--|[-–—])\s+")
_JUSTIFICATION = re.compile(  # a clause with its own subject and verb: why the answer is right
    r"(?:he|she|it|they|this|that|these|those|which|who)\s+(?:\w+\s+)?(?:is|was|are|were|has|had|have|"
    r"represents|depicts|shows|says|means|refers|appears|holds|carries|stands|\w+ed)\b|"
    r"(?:because|since|given that|as shown|as seen)\b|there\s+(?:is|are|was|were)\b|"
    r"(?:i|we|you)\s+(?:can\s+)?(?:see|count|think|believe|notice)\b|"
    r"the\s+(?:\w+\s+){1,2}(?:is|was|are|were|represents|depicts|shows|says|states|mentions|notes|holds|"
    r"carries|stands|refers)\b", re.IGNORECASE)
_ASIDE = re.compile(r"\s*(?:[(（\[]([^()（）\[\]]+)[)）\]]|\s(?:--|[–—])\s+(.+))\s*[.。]?\s*$")  # not "-": ranges
_SPELLED_OUT = re.compile(r"\s*[,，;；(（—–-]\s*(?:i\.\s?e\.|e\.\s?g\.|namely|that is to say|in other words|specifically|"
                          r"也就是说?|即)[\s,，:：]+\S.*$", re.IGNORECASE)
ASIDE_WORDS = 4  # words of a closing aside that make it more than a gloss ("Paris (la Ville Lumière)")
_REMARK_OPENS = re.compile(r"[\s(（\[【;；,，.。:：\-–—]")  # where a closing remark may begin
_TRAILING_REMARK = re.compile(  # "(根据文章，…)", "— as stated in the second paragraph", ", according to the text."
    r"\s*(?:[(（\[【]([^()（）\[\]【】]+)[)）\]】]|(?:[-–—]+|[;；,，.。:：])?\s*([^\n]+?))\s*[.。]?\s*$")


def nfkc(text: str) -> str:
    """``text`` in Unicode NFKC form (full-width letters and punctuation made ASCII)."""
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


def normalise(text: str) -> str:
    """Casefolded, NFKC, punctuation and symbols removed, words joined by single spaces
    (no spaces around CJK characters)."""
    text = " ".join(_NOT_WORD.sub(" ", nfkc(text).casefold()).split())
    return _CJK_SPACING.sub(r"\1", text) if has_cjk(text) else text


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a CJK letter (kana or Han)."""
    return _CJK_LETTER.search(text) is not None


def is_cjk(char: str) -> bool:
    """Whether one character is CJK (a letter or CJK/full-width punctuation): written without
    spaces around it."""
    return _CJK_CHAR.match(char) is not None


def word_count(text: str) -> int:
    """Words in ``text``: runs of letters and digits, plus CJK characters at
    :data:`CJK_CHARS_PER_WORD` characters a word (rounded up)."""
    text = nfkc(text)
    cjk = len(_CJK_LETTER.findall(text))
    return len(_WORD.findall(text)) + math.ceil(cjk / CJK_CHARS_PER_WORD)


def contains(needle: str, haystack: str) -> bool:
    """Whether a :func:`normalise`-d phrase occurs in a normalised text: as whole words, or
    anywhere when the phrase holds CJK (written without spaces)."""
    if not needle:
        return False
    if has_cjk(needle):
        return needle in haystack
    return f" {needle} " in f" {haystack} "


def is_question(text: str) -> bool:
    """Whether ``text`` asks a question or for information (see the module docstring)."""
    text = nfkc(text).strip()
    if not text:
        return False
    if "?" in text:  # NFKC made ？ a ?
        return True
    if has_cjk(text) and _ZH_QUESTION.search(text):
        return True
    for clause in _CLAUSE.split(text):
        if clause.startswith(_ZH_REQUESTS):
            return True
        words = [_word(word) for word in _CLAUSE_WORD.findall(clause.lower().replace("’", "'"))]
        if not words or words[0] not in _INTERROGATIVES and words[0] not in _PREPOSITIONS:
            continue
        if words[0] not in _PREPOSITIONS:
            return True
        # "In which year ...", "According to the article, what ...": an interrogative soon after
        if any(word in _INTERROGATIVES for word in words[1:4]):
            return True
    return False


def cites_source(text: str) -> bool:
    """Whether ``text`` cites the article or the text it comes from (``according to the
    article``, ``as stated in the second paragraph``, ``根据文章``)."""
    return _CITES.search(nfkc(text)) is not None


def opens_with_remark(text: str) -> bool:
    """Whether ``text`` (after punctuation and brackets) opens a closing remark, not content: a
    citation of the source, or after a spaced dash or a bracket a justification (``— he is named
    as the sculptor``, ``(it has a basket)``)."""
    text = nfkc(text)
    if _OPENS_CITATION.match(text) is not None:
        return True
    bare = text.lstrip()
    return bare[:1] in "-–—(（[" and _JUSTIFICATION.match(bare.lstrip("-–—(（[ ")) is not None


def split_remark(answer: str) -> tuple[str, str]:
    """An answer and the remark that closes it, else ``(answer, "")``: a remark citing the source
    (``1420 (according to the article)``, ``1889 — as stated in the second paragraph``), or a
    justification after a spaced dash or in brackets (``Bartholdi — he is named as the
    sculptor``, ``Libertas — the statue represents her``, ``A scooter (it has a basket)``)."""
    for dash in _SPACED_DASH.finditer(answer):
        kept = answer[:dash.start()].rstrip()
        if kept and _JUSTIFICATION.match(answer, dash.end()):
            return kept, answer[dash.start():].strip()
    bracket = _ASIDE.search(answer)
    if bracket and bracket.group(1) and bracket.start() and _JUSTIFICATION.match(bracket.group(1).strip()):
        return answer[:bracket.start()].rstrip(), answer[bracket.start():].strip()
    if not cites_source(answer):
        return answer, ""
    for opening in _REMARK_OPENS.finditer(answer):
        match = _TRAILING_REMARK.match(answer, opening.start())
        kept = answer[:opening.start()].rstrip()
        if match is None or not kept:
            continue
        remark = match.group(1) or match.group(2)
        if _CITES.search(nfkc(remark)) if match.group(1) else _OPENS_CITATION.match(nfkc(remark)):
            return kept, answer[opening.start():].strip()
    return answer, ""


def closing_aside(answer: str) -> str:
    """The aside that closes an answer, else ``""``: :data:`ASIDE_WORDS` words or more in brackets
    or after a spaced dash (``three (two on the left of the door and one on the right)``), or
    what follows ``i.e.``, ``e.g.``, ``namely``, ``也就是`` …: part of the answer or a remark,
    which is a guess."""
    spelled = _SPELLED_OUT.search(answer)  # "four, i.e. two adults and two children"
    if spelled is not None and spelled.start() > 0:
        return answer[spelled.start():].strip()
    aside = _ASIDE.search(answer)
    if aside is None or aside.start() == 0 or word_count(aside.group(1) or aside.group(2)) < ASIDE_WORDS:
        return ""
    return answer[aside.start():].strip()


def _word(word: str) -> str:
    """A word as :data:`_INTERROGATIVES` holds it: "what's" is "what", "isn't" stays."""
    return word if word in _INTERROGATIVES else word.partition("'")[0]


def question_key(question: str) -> str:
    """The key under which two questions are the same question (:func:`normalise`)."""
    return normalise(question)


def question_tokens(question: str) -> frozenset[str]:
    """The token set compared for near-duplicate questions: normalised words, and character
    bigrams of CJK runs (single characters for a one-character run)."""
    text = normalise(question)
    tokens = set(_WORD.findall(text))
    for run in _CJK_RUN.findall(text):
        tokens.update(run[i:i + 2] for i in range(max(1, len(run) - 1)))
    return frozenset(tokens)


def key_name(name: object) -> str:
    """A key of a model-written object as compared: lower case, spaces and hyphens as ``_``."""
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def pick(mapping: dict, names: tuple[str, ...], default: object = None) -> object:
    """The value of the first of ``names`` (in :func:`key_name` form) that ``mapping`` has, else
    ``default``."""
    keyed = {key_name(key): value for key, value in mapping.items()}
    return next((keyed[name] for name in names if name in keyed), default)


def read_index(value: object) -> int | None:
    """A pair's index as a model wrote it: an integer, a whole float, or text such as ``"2"``,
    ``"q2"``, ``"#2"``, ``"Pair 2:"``; else None (booleans are not indices)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = _INDEX_TEXT.match(value)
        if match:
            return int(match.group(1))
    return None
