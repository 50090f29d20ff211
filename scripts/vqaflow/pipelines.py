"""The pipelines: one object each, holding everything that differs between them.

A pipeline is a sequence of request :class:`Step` objects (each: its prompts, whether the record's
images go with it, the JSON schema asked with ``structured_output``; a later step's prompt is
a template over earlier steps' answers), plus what the last step's answer is parsed into (an
article and pairs, ``{context, qas}``, or only pairs), where its results go in an output
record and how its pairs are read back, its judge prompt and its reformat prompt. The generate stage asks the
steps in order, each only for the records whose previous step answered. Adding a pipeline
is one entry in :data:`PIPELINES`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .columns import Columns
from .quality.blind import BLIND_PROMPT_IMAGE_ONLY, BLIND_PROMPT_WITH_ARTICLE
from .quality.judge import JUDGE_PROMPT_IMAGE_ONLY, JUDGE_PROMPT_WITH_ARTICLE
from .quality.parse import Parse, parse_answer

SKVQA_PROMPT = (
    "Write a Wikipedia article related to this image without directly referring to the "
    "image. Then write question answer pairs. The question answer pairs should satisfy the "
    "following criteria.\n"
    "1: The question should refer to the image.\n"
    "2: The question should avoid mentioning the name of the object in the image.\n"
    "3: The question should be answered by reasoning over the Wikipedia article.\n"
    "4: The question should sound natural and concise.\n"
    "5: The answer should be extracted from the Wikipedia article.\n"
    "6: The answer should not be any objects in the image.\n"
    "7: The answer should be a single word or phrase and list all correct answers "
    "separated by commas.\n"
    "8: The answer should not contain 'and', 'or', rather you can split them into "
    "multiple answers."
)
ASSISTANT_SYSTEM_PROMPT = "You are a helpful assistant."
IMAGE_QA_SYSTEM_PROMPT = (
    "You are a image question-answer generator. Your task is to generate a "
    "question-answer pair for the given image content."
)
IMAGE_VQA_PROMPT = (
    "Write question answer pairs about the content of this image: the objects, their "
    "attributes, counts, positions, any visible text and the scene as a whole. Each "
    "question must be answerable from the image alone. Write each pair as\n"
    "Question: ...\nAnswer: ..."
)
IMAGE_QA_PROMPT = (
    "Generate one question-answer pair about this image. Write it as\n"
    "Question: ...\nAnswer: ..."
)

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


@dataclass(frozen=True)
class Step:
    """One request of a pipeline.

    ``prompt``: the user text; for a step after the first, a template over the earlier steps'
    answers (``{name}`` is the answer of the step called ``name``; literal braces doubled).
    The first step's prompts are defaults: a record's conversation and the config's
    ``system_prompt`` and ``prompt`` win over them."""

    name: str
    system_prompt: str
    prompt: str
    images: bool  # the record's images go with the request
    schema: dict | None  # the JSON schema asked with structured_output (None: free text)


@dataclass(frozen=True)
class Pipeline:
    """What one pipeline asks for and what its answers become."""

    name: str
    steps: tuple[Step, ...]
    want_article: bool  # the last step's answers carry an article: results go to {context, qas}

    @property
    def system_prompt(self) -> str:
        """The first step's default system prompt (``system_prompt`` overrides)."""
        return self.steps[0].system_prompt

    @property
    def prompt(self) -> str:
        """The first step's default user prompt (``prompt`` overrides)."""
        return self.steps[0].prompt

    @property
    def judge_prompt(self) -> str:
        """What the judge model is asked about this pipeline's pairs (``verify.prompt`` overrides)."""
        return JUDGE_PROMPT_WITH_ARTICLE if self.want_article else JUDGE_PROMPT_IMAGE_ONLY

    @property
    def blind_prompt(self) -> str:
        """What the blind check asks about this pipeline's questions, without the image."""
        return BLIND_PROMPT_WITH_ARTICLE if self.want_article else BLIND_PROMPT_IMAGE_ONLY

    def answer_schema(self) -> dict | None:
        """The JSON schema of the answers that are parsed (the last step's)."""
        return self.steps[-1].schema

    def parse(self, answer: str, finish_reason: str | None) -> Parse:
        """What an answer of the last step is read into: the pairs, after the article when
        ``want_article`` (``finish_reason``: the backend's, ``length`` when cut off)."""
        return parse_answer(answer, self.want_article, finish_reason)

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

    def store(self, record: dict, columns: Columns, context: str | None, qas: list[dict]) -> None:
        """Put a parsed answer into an output record."""
        if self.want_article:
            record[columns.refined] = {"context": context or "", "qas": qas}
        else:
            record[columns.qas] = qas

    def qas(self, record: dict, columns: Columns) -> list[dict]:
        """The pairs of an output record."""
        return record[columns.refined]["qas"] if self.want_article else record[columns.qas]

    def context(self, record: dict, columns: Columns) -> str | None:
        """The article of an output record (None for pipelines without one)."""
        return record[columns.refined]["context"] if self.want_article else None


def one_step(name: str, system_prompt: str, prompt: str, want_article: bool) -> Pipeline:
    """A pipeline of one request with the record's images, parsed into pairs (and an article)."""
    return Pipeline(name, (Step("generate", system_prompt, prompt, True, qa_schema(want_article)),), want_article)


PIPELINES: dict[str, Pipeline] = {
    pipeline.name: pipeline
    for pipeline in (
        one_step("context_vqa", ASSISTANT_SYSTEM_PROMPT, SKVQA_PROMPT, want_article=True),
        one_step("image_vqa", ASSISTANT_SYSTEM_PROMPT, IMAGE_VQA_PROMPT, want_article=False),
        one_step("image_qa", IMAGE_QA_SYSTEM_PROMPT, IMAGE_QA_PROMPT, want_article=False),
    )
}


def pipeline(name: str) -> Pipeline:
    """The pipeline called ``name`` (the config schema admits only known names)."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r} (known: {', '.join(PIPELINES)})") from None
