"""The pipelines: one :class:`Pipeline` object each, holding everything that differs between them.

:mod:`.base` says what a pipeline is (its request steps, its outputs); each family lives in a
module of its own (:mod:`.pairs`: the seed pipelines). Adding a pipeline is one module and one
entry in :data:`PIPELINES`; nothing else compares pipeline names.
"""

from __future__ import annotations

from .base import ONE, Answer, Ask, Outputs, Pipeline, Step, StepError, StepInput, qa_schema
from .pairs import (
    ASSISTANT_SYSTEM_PROMPT,
    CONTEXT_VQA,
    IMAGE_QA,
    IMAGE_QA_PROMPT,
    IMAGE_QA_SYSTEM_PROMPT,
    IMAGE_VQA,
    IMAGE_VQA_PROMPT,
    SKVQA_PROMPT,
)
from .scale_caption import SCALE_CAPTION

PIPELINES: dict[str, Pipeline] = {
    pipeline.name: pipeline
    for pipeline in (CONTEXT_VQA, IMAGE_VQA, IMAGE_QA, SCALE_CAPTION)
}


def pipeline(name: str) -> Pipeline:
    """The pipeline called ``name`` (the config schema admits only known names)."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r} (known: {', '.join(PIPELINES)})") from None


__all__ = [
    "ASSISTANT_SYSTEM_PROMPT", "IMAGE_QA_PROMPT", "IMAGE_QA_SYSTEM_PROMPT", "IMAGE_VQA_PROMPT", "ONE", "PIPELINES",
    "SKVQA_PROMPT", "Answer", "Ask", "Outputs", "Pipeline", "Step", "StepError", "StepInput", "pipeline", "qa_schema",
]
