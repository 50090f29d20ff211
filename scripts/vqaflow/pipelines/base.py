"""What a pipeline is: a sequence of request :class:`Step` objects and what their answers become.

A step asks one request per record (its ``prompt``, a template over the earlier steps' results)
or fans out into several (``asks``: sub-key -> :class:`Ask`, e.g. each question in each rotation,
with the image and without); ``collect`` turns a record's answers of the step into the step's
result, which later steps see (parsed, not only raw text). The generate stage asks the steps in
order, each for the records every earlier step answered, every request on the shard's journal.

After the last step a pipeline reads the results into a :class:`~vqaflow.quality.parse.Parse`:
its pairs (``qas``, when it has any), the output fields it declares (``fields``: ``caption``,
``question`` and ``answer``, ...) and a status only as strong as what the code checked. Without a
``reader`` the last step's answer is parsed into pairs (and an article, ``want_article``): the
seed pipelines, whose answers the repair and the reformat pass know.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..columns import Columns
from ..quality.judge import JUDGE_PROMPT_IMAGE_ONLY, JUDGE_PROMPT_WITH_ARTICLE
from ..quality.parse import Parse, parse_answer

ONE = ""  # the sub-key of a step's one request per record (its request is keyed by the record id)

REFORMAT_SYSTEM_PROMPT = (
    "You copy text into JSON. You never write, change, translate or complete text: every string "
    "you return is copied character for character from the text you are given."
)
REFORMAT_PROMPT = (
    "Below, between <<<ANSWER and ANSWER>>>, is a model's answer to a request for {wanted}. "
    "Copy {what} into a JSON object of this schema:\n{schema}\n\n"
    "Copy each question and each answer exactly as written, in its language. Leave out labels "
    "(\"Question:\", \"A:\", \"问题1：\"), numbering, markdown and markup, and whatever is not "
    "part of them: chatter, explanations, notes. Leave out a question without an answer and an "
    "answer that is a refusal. {article}Return only the JSON object.\n\n<<<ANSWER\n{raw}\nANSWER>>>"
)
REFORMAT_ARTICLE = (
    "Copy the article (its title and paragraphs, without a label such as \"Article:\") into "
    "\"context\", paragraphs separated by a blank line. "
)

_PAIR_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
    "additionalProperties": False,
}


def qa_schema(want_article: bool) -> dict:
    """The strict JSON schema of an answer of pairs (after an article when ``want_article``)."""
    properties: dict = {"qas": {"type": "array", "items": _PAIR_SCHEMA}}
    if want_article:
        properties = {"context": {"type": "string"}, **properties}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


class StepError(ValueError):
    """A step cannot be built for a record, and never will be (the record fails, kind ``prompt``)."""


@dataclass(frozen=True)
class Answer:
    """One answered request: its text and the backend's finish reason."""

    text: str
    finish_reason: str | None = None

    @property
    def cut_off(self) -> bool:
        """Whether the backend stopped at ``max_tokens``."""
        return self.finish_reason == "length"


@dataclass(frozen=True)
class Ask:
    """One request a step makes for a record: the user text, whether the record's images go
    with it (``False``: a text-only request), and its system prompt (None: the step's)."""

    text: str
    images: bool = True
    system: str | None = None


@dataclass(frozen=True)
class StepInput:
    """What a step's functions (``asks``, ``collect``) and a pipeline's ``reader`` see of a record."""

    record_id: str
    results: Mapping[str, Any]  # the results of the steps so far, by step name
    settings: Mapping[str, Any]  # the pipeline's config section (named like the pipeline; {} when none)


def template_values(results: Mapping[str, Any]) -> dict[str, Any]:
    """What a step's ``prompt`` template is filled with: each earlier step's result, an
    :class:`Answer` as its text."""
    return {name: result.text if isinstance(result, Answer) else result for name, result in results.items()}


@dataclass(frozen=True)
class Step:
    """One step of a pipeline: one request per record, or several (``asks``).

    ``prompt``: the user text of a one-request step; for a step after the first, a template over
    the earlier steps' results (``{name}``: the result of the step called ``name``, an answer as
    its text; literal braces doubled). The first step's prompts are defaults: a record's
    conversation and the config's ``system_prompt`` and ``prompt`` win over them; it asks one
    request per record. ``images``: the record's images go with the one request. ``schema``: the
    JSON schema its requests carry with ``structured_output`` (None: free text).

    ``asks(StepInput) -> {sub_key: Ask}``: the step's requests for a record instead (a fan-out;
    none at all is fine). Sub-keys are the pipeline's names for the requests (``"q0.r1.blind"``);
    ``""`` (:data:`ONE`) is the record's one request. A step that cannot be built for a record
    raises: the record fails alone (:class:`StepError`: for good; anything else: retried by the
    next run).

    ``collect(StepInput, {sub_key: Answer}) -> result``: the step's result from the record's
    answers (every request answered; a record with a request that failed fails, and is asked
    only what is missing on the next run). Default: the :class:`Answer` of a one-request step,
    the dict of answers of a fan-out.
    """

    name: str
    system_prompt: str
    prompt: str
    images: bool
    schema: dict | None
    asks: Callable[[StepInput], dict[str, Ask]] | None = None
    collect: Callable[[StepInput, dict[str, Answer]], Any] | None = None

    @property
    def single(self) -> bool:
        """Whether the step asks one request per record (no ``asks``)."""
        return self.asks is None

    def requests(self, inp: StepInput) -> dict[str, Ask]:
        """The step's requests for a record, by sub-key."""
        if self.asks is None:
            return {ONE: Ask(self.prompt.format_map(template_values(inp.results)), self.images)}
        return self.asks(inp)

    def result(self, inp: StepInput, answers: dict[str, Answer]) -> Any:
        """The step's result for a record from its answers by sub-key."""
        if self.collect is not None:
            return self.collect(inp, answers)
        return answers[ONE] if self.asks is None else answers


@dataclass(frozen=True)
class Pipeline:
    """What one pipeline asks for and what its answers become.

    ``fields``: the fields it writes into an output record besides its pairs (``caption``;
    ``question`` and ``answer``; ...), each from ``Parse.fields``. ``pairs``: whether it has
    question-answer pairs (``Parse.qas``, stored under ``keys.qas``, or ``keys.refined`` with the
    article): the judge, the rule filters, the exports and the Hub export read them.
    ``reader(StepInput) -> Parse``: the record's outputs from every step's result (None: the last
    step's answer parsed into pairs). ``training(fields) -> [{question, answer}]``: the training
    turns of a pipeline without pairs (its exports). ``about``: what it makes, in a line.
    """

    name: str
    steps: tuple[Step, ...]
    want_article: bool = False  # the answers carry an article: results go to {context, qas}
    fields: tuple[str, ...] = ()
    pairs: bool = True
    reader: Callable[[StepInput], Parse] | None = None
    training: Callable[[Mapping[str, Any]], list[dict]] | None = None
    about: str = "question-answer pairs about the image"

    def __post_init__(self):
        if not self.steps or not self.steps[0].single:
            raise ValueError(f"pipeline {self.name!r}: the first step asks one request per record")
        if not self.pairs and self.training is None:
            raise ValueError(f"pipeline {self.name!r}: a pipeline without pairs says what it trains (training)")

    @property
    def system_prompt(self) -> str:
        """The first step's default system prompt (``system_prompt`` overrides)."""
        return self.steps[0].system_prompt

    @property
    def prompt(self) -> str:
        """The first step's default user prompt (``prompt`` overrides)."""
        return self.steps[0].prompt

    @property
    def answer_step(self) -> Step:
        """The step whose answer is the record's raw answer (``keys.answer``): the last one
        asking one request per record."""
        return next(step for step in reversed(self.steps) if step.single)

    @property
    def repairs(self) -> bool:
        """Whether the repair pass applies: the last step asks one request per record (a cut-off
        or unreadable answer of it is asked again with more tokens)."""
        return self.steps[-1].single

    @property
    def reformats(self) -> bool:
        """Whether the reformat pass applies: the last answer is parsed into pairs."""
        return self.reader is None

    @property
    def judge_prompt(self) -> str:
        """What the judge model is asked about this pipeline's pairs (``verify.prompt`` overrides)."""
        return JUDGE_PROMPT_WITH_ARTICLE if self.want_article else JUDGE_PROMPT_IMAGE_ONLY

    def answer_schema(self) -> dict | None:
        """The JSON schema of the last step's answers."""
        return self.steps[-1].schema

    def parse(self, answer: str, finish_reason: str | None) -> Parse:
        """An answer of pairs read: the pairs, after the article when ``want_article``
        (``finish_reason``: the backend's, ``length`` when cut off)."""
        return parse_answer(answer, self.want_article, finish_reason)

    def read(self, inp: StepInput) -> Parse:
        """A record's outputs from the results of every step (``inp.results``)."""
        if self.reader is not None:
            return self.reader(inp)
        last = inp.results[self.steps[-1].name]
        return self.parse(last.text, last.finish_reason)

    def reformat_prompt(self, raw: str) -> tuple[str, str]:
        """The system prompt and user text asking a model to copy an answer of the last step
        (``raw``) into :meth:`answer_schema`'s JSON (the reformat pass)."""
        schema = json.dumps(self.answer_schema() or qa_schema(self.want_article), ensure_ascii=False)
        if self.want_article:
            wanted, what, article = "an article and question-answer pairs", "the article and the pairs", REFORMAT_ARTICLE
        else:
            wanted, what, article = "question-answer pairs", "the pairs", ""
        return REFORMAT_SYSTEM_PROMPT, REFORMAT_PROMPT.format(wanted=wanted, what=what, schema=schema,
                                                              article=article, raw=raw)

    def output_fields(self, columns: Columns) -> tuple[str, ...]:
        """The fields the pipeline writes into an output record: its pairs' and its own."""
        pairs = (columns.refined if self.want_article else columns.qas,) if self.pairs else ()
        return (*pairs, *self.fields)

    def store(self, record: dict, columns: Columns, context: str | None, qas: list[dict],
              fields: Mapping[str, Any] | None = None) -> None:
        """Put a parsed answer into an output record: the pairs (after the article) and the fields."""
        if self.pairs and self.want_article:
            record[columns.refined] = {"context": context or "", "qas": qas}
        elif self.pairs:
            record[columns.qas] = qas
        for name in self.fields:
            record[name] = (fields or {}).get(name)

    def qas(self, record: dict, columns: Columns) -> list[dict]:
        """The pairs of an output record ([] for a pipeline without pairs)."""
        if not self.pairs:
            return []
        return record[columns.refined]["qas"] if self.want_article else record[columns.qas]

    def context(self, record: dict, columns: Columns) -> str | None:
        """The article of an output record (None for pipelines without one)."""
        return record[columns.refined]["context"] if self.want_article else None

    def values(self, record: dict) -> dict[str, Any]:
        """The pipeline's own output fields of an output record."""
        return {name: record.get(name) for name in self.fields}


@dataclass(frozen=True)
class Outputs:
    """A pipeline's outputs as a reader returns them, before they become a :class:`Parse`."""

    fields: dict[str, Any] = field(default_factory=dict)
    qas: list[dict] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    truncated: bool = False

    def parse(self, usable: bool) -> Parse:
        """The :class:`Parse`: ``ok`` when no check raised an issue, ``none`` when nothing
        ``usable`` came out, else ``partial``."""
        issues = tuple(dict.fromkeys(self.issues))
        status = "ok" if not issues and usable else "partial" if usable else "none"
        return Parse(None, self.qas, status, issues, self.truncated, fields=self.fields)
