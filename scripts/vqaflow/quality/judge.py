"""Verification by a judge model: one request per record, one verdict per pair.

The request carries the record's image(s), the article (context_vqa) and all of the
record's pairs, numbered from 1. The judge answers with

    {"verdicts": [{"index": 1, "reason": "...", "answerable": true, "correct": true}, ...]}

:func:`judge_text` builds the user text, :data:`VERDICT_SCHEMA` is the strict schema for
structured outputs, :func:`read_verdicts` maps the decoded answer back onto the pairs
(never guessing a verdict for a pair the judge did not cover) and :func:`accepted` is
the keep rule. ``reason`` comes before the two booleans in the schema so that, under
constrained decoding, the judge writes its one-sentence rationale before it commits.

The answer format is appended by :func:`judge_text` after the pairs, whatever the
prompt, so a custom ``verify.prompt`` only has to state the criteria.
"""

from __future__ import annotations

from .text import pick, read_index

JUDGE_SYSTEM_PROMPT = (
    "You are a meticulous annotator who checks visual question-answering training data. "
    "You judge every question-answer pair on its own, strictly, using only the material "
    "you are given. When in doubt, you reject. You answer with JSON only."
)

_CORRECTNESS = (
    "A pair is correct when the given answer is right and complete: it agrees with the "
    "evidence, names the right thing, and when several answers are listed (separated by "
    "commas) every one of them is right and none that the evidence requires is missing. "
    "An answer that is only partly right, too vague to be checked (\"it\", \"a thing\"), "
    "hedged (\"maybe\", \"probably\"), or that contradicts the evidence is not correct. "
    "Minor differences of wording, spelling, case, units or number format that keep the "
    "meaning (\"5\" and \"five\", \"NYC\" and \"New York City\") are fine. "
    "A pair that is not answerable is not correct either.\n"
)

_PROCEDURE = (
    "For each pair: first look at the image(s){article_step} and find the evidence the "
    "question needs, then work out the answer yourself, then compare it with the given "
    "answer. Do not trust the given answer and do not let it steer what you see. Judge "
    "each pair independently of the others.\n"
)

JUDGE_PROMPT_WITH_ARTICLE = (
    "Below are an image (or several), a Wikipedia-style article written about it, and "
    "question-answer pairs generated from the two. Check every pair.\n\n"
    "A pair is answerable when all of the following hold:\n"
    "1. The question refers to what is shown in the image: the image is needed to know "
    "what the question is about.\n"
    "2. The answer can be found by combining what is visible in the image with what the "
    "article states. Facts that appear in neither the image nor the article do not count, "
    "except everyday common sense (nobody needs to be told that the sky is above the sea).\n"
    "3. The question is clear and has one defensible answer (or one defensible list of "
    "answers); it is not ambiguous, subjective or a matter of opinion.\n"
    "4. The question does not rest on a false premise about the image or the article.\n\n"
    + _CORRECTNESS
    + "The article is the authority for facts it states, even when you believe otherwise; "
    "if the article contradicts what the image clearly shows, the pair is not answerable.\n\n"
    + _PROCEDURE.format(article_step=" and read the article")
)

JUDGE_PROMPT_IMAGE_ONLY = (
    "Below are one or more images and question-answer pairs about them. Check every pair.\n\n"
    "A pair is answerable when all of the following hold:\n"
    "1. The answer can be determined from the image(s) alone: from visible objects, "
    "attributes, counts, positions, text and the scene, plus everyday common sense. "
    "Outside knowledge that the image does not show (dates, names, history of a place) "
    "does not count unless it is plainly visible, for instance written in the image.\n"
    "2. The question is clear and has one defensible answer; it is not ambiguous, "
    "subjective or a matter of opinion, and what it asks about is visible (not hidden, "
    "cut off, or too small or blurry to make out).\n"
    "3. The question does not rest on a false premise about the image (it does not ask "
    "about something that is not there).\n\n"
    + _CORRECTNESS
    + "For counts, count carefully; for text in the image, the answer must match what is "
    "written; for positions, left and right are from the viewer's point of view.\n\n"
    + _PROCEDURE.format(article_step="")
)

ANSWER_FORMAT = (
    "Answer with a JSON object and nothing else, one verdict per pair, in the order the "
    "pairs were given, with the pair's number as index (the first pair has index 1):\n"
    '{{"verdicts": [{{"index": 1, "reason": "<one short sentence>", "answerable": true, '
    '"correct": true}}, ...]}}\n'
    "{count}"
)

VERDICT_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "verdicts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "reason": {"type": "string"},
                    "answerable": {"type": "boolean"},
                    "correct": {"type": "boolean"},
                },
                "required": ["index", "reason", "answerable", "correct"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["verdicts"],
    "additionalProperties": False,
}

# Issue codes of read_verdicts.
ISSUES = (
    "not_json",  # the answer is not a JSON object or list (decoding failed or a bare string)
    "bad_shape",  # JSON, but no list of verdicts in it
    "bad_verdict",  # a verdict that is not an object
    "bad_value",  # answerable/correct missing or not readable as a boolean: that pair has no verdict
    "bad_index",  # an index that is not a number or is below 1: that verdict is ignored
    "missing_index",  # no verdict carries an index; the order was used (only when the count matches)
    "zero_based",  # indexes were 0..n-1 and were shifted by one
    "duplicate_index",  # two verdicts for one pair; if they disagree the pair has no verdict
    "extra_verdicts",  # verdicts for pairs that do not exist (index above n)
    "missing_verdicts",  # at least one pair has no verdict
    "missing_reason",  # a verdict without a reason (the reason is set to "")
)

_LIST_KEYS = ("verdicts", "verdict", "results", "judgements", "judgments", "evaluations",
              "evaluation", "pairs", "items", "answers")
_INDEX_KEYS = ("index", "idx", "id", "pair", "pair_index", "pair_number", "number", "question_index")
_ANSWERABLE_KEYS = ("answerable", "is_answerable", "answerability")
_CORRECT_KEYS = ("correct", "is_correct", "answer_correct", "correctness", "accurate")
_REASON_KEYS = ("reason", "reasoning", "rationale", "explanation", "justification", "comment")
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}
_MISSING = object()


def judge_text(prompt: str, qas: list[dict], context: str | None) -> str:
    """The user text of a judge request: the prompt, the article (when ``context`` is
    not None), the numbered pairs and the answer format."""
    parts = [prompt.strip()]
    if context is not None:
        parts.append("Article:\n" + (context.strip() or "(empty)"))
    lines = []
    for number, qa in enumerate(qas, 1):
        lines.append(f"{number}. Question: {str(qa.get('question', '')).strip()}\n"
                     f"   Answer: {str(qa.get('answer', '')).strip()}")
    parts.append("Question-answer pairs:\n" + "\n".join(lines))
    n = len(qas)
    count = ("There is 1 pair, so give exactly 1 verdict, index 1." if n == 1
             else f"There are {n} pairs, so give exactly {n} verdicts, indexes 1 to {n}.")
    parts.append(ANSWER_FORMAT.format(count=count))
    return "\n\n".join(parts)


def _has(item: dict, names: tuple[str, ...]) -> bool:
    return pick(item, names, _MISSING) is not _MISSING


def _boolean(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().strip(".!").lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def _verdict_list(data) -> list | None:
    """The list of verdicts in a decoded answer, or None when there is none."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        return None
    value = pick(data, _LIST_KEYS, _MISSING)
    if value is not _MISSING:
        if isinstance(value, list):
            return value
        if isinstance(value, dict):
            return _verdict_list(value) if not _has(value, _ANSWERABLE_KEYS) else [value]
        return None
    if _has(data, _ANSWERABLE_KEYS) or _has(data, _CORRECT_KEYS):
        return [data]  # a single verdict, bare
    if data and all(read_index(key) is not None and isinstance(value, dict) for key, value in data.items()):
        return [{**value, "index": key} for key, value in data.items()]  # {"1": {...}, "2": {...}}
    return None


def read_verdicts(data: object, n_pairs: int) -> tuple[list[dict | None], list[str]]:
    """The verdict per pair from an already-decoded judge answer, and issue codes.

    Each verdict is ``{"answerable": bool, "correct": bool, "reason": str}``; a pair the
    judge did not cover (or covered unreadably or inconsistently) gets ``None``. Accepted
    variations: a bare list of verdicts or a bare single verdict, other usual key names,
    string booleans ("yes", "true"), string indexes ("2", "Q2"), 0-based indexes when
    they are exactly 0..n-1 (flagged ``zero_based``), no indexes at all when the number
    of verdicts equals the number of pairs (flagged ``missing_index``), a missing reason.
    Issue codes are listed in :data:`ISSUES`, each at most once, in order of occurrence.
    """
    issues: list[str] = []  # in order of occurrence, repeats dropped at the end
    verdicts: list[dict | None] = [None] * n_pairs
    if not isinstance(data, (dict, list)):
        issues.append("not_json")
    elif (items := _verdict_list(data)) is None:
        issues.append("bad_shape")
    elif (indexed := _indexed(_read_items(items, issues), n_pairs, issues)) is not None:
        _place(indexed, verdicts, issues)
    if any(verdict is None for verdict in verdicts):
        issues.append("missing_verdicts")
    return verdicts, list(dict.fromkeys(issues))


def _read_items(items: list, issues: list[str]) -> list[tuple[int | None, bool, dict | None]]:
    """(index, had an index key, verdict) of every readable item."""
    read = []
    for item in items:
        if not isinstance(item, dict):
            issues.append("bad_verdict")
            continue
        raw_index = pick(item, _INDEX_KEYS, _MISSING)
        has_index = raw_index is not _MISSING
        index = read_index(raw_index) if has_index else None
        if has_index and index is None:
            issues.append("bad_index")
            continue
        answerable = _boolean(pick(item, _ANSWERABLE_KEYS))
        correct = _boolean(pick(item, _CORRECT_KEYS))
        reason = pick(item, _REASON_KEYS)
        if reason is None:
            issues.append("missing_reason")
            reason = ""
        verdict = None
        if answerable is None or correct is None:
            issues.append("bad_value")
        else:
            verdict = {"answerable": answerable, "correct": correct, "reason": str(reason).strip()}
        read.append((index, has_index, verdict))
    return read


def _indexed(read: list[tuple[int | None, bool, dict | None]], n_pairs: int,
             issues: list[str]) -> list[tuple[int, dict | None]] | None:
    """(1-based index, verdict) of the read items, or None when which pair a verdict belongs
    to would be a guess."""
    if read and not any(has_index for _, has_index, _ in read):
        issues.append("missing_index")
        if len(read) != n_pairs:
            if len(read) > n_pairs:
                issues.append("extra_verdicts")
            return None
        return [(position, verdict) for position, (_, _, verdict) in enumerate(read, 1)]
    if any(not has_index for _, has_index, _ in read):
        issues.append("bad_index")  # some verdicts have an index and some do not: drop the latter
    indexed = [(index, verdict) for index, has_index, verdict in read if has_index]
    if n_pairs and sorted(index for index, _ in indexed) == list(range(n_pairs)):
        issues.append("zero_based")
        indexed = [(index + 1, verdict) for index, verdict in indexed]
    return indexed


def _place(indexed: list[tuple[int, dict | None]], verdicts: list[dict | None], issues: list[str]) -> None:
    """Each verdict onto its pair; none where two verdicts for one pair disagree."""
    seen: dict[int, dict | None] = {}
    conflicting: set[int] = set()
    for index, verdict in indexed:
        if index < 1:
            issues.append("bad_index")
            continue
        if index > len(verdicts):
            issues.append("extra_verdicts")
            continue
        if index in seen:
            issues.append("duplicate_index")
            first = seen[index]
            same = (first is not None and verdict is not None
                    and (first["answerable"], first["correct"]) == (verdict["answerable"], verdict["correct"]))
            if not same:
                conflicting.add(index)
            continue
        seen[index] = verdict
    for index, verdict in seen.items():
        if index not in conflicting:
            verdicts[index - 1] = verdict


def accepted(verdict: dict | None) -> bool:
    """Whether a pair passes: the judge found it answerable and its answer correct.
    A pair without a verdict (``None``) does not pass."""
    return bool(verdict) and verdict.get("answerable") is True and verdict.get("correct") is True
