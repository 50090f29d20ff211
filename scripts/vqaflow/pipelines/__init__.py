"""The pipelines: one :class:`Pipeline` object each, holding everything that differs between them.

:mod:`.base` says what a pipeline is (its request steps, its outputs); each family lives in a
module of its own (:mod:`.pairs`: the seed pipelines; :mod:`.caption`: ``image_caption``;
:mod:`.two_step`: ``image_vqa_two_step``; :mod:`.mcq`: ``visual_mcq``; :mod:`.scale_caption`:
``scale_caption``). Adding a pipeline is one module and one entry in :data:`PIPELINES`; nothing
else compares pipeline names.
"""

from __future__ import annotations

from .base import ONE, Answer, Ask, Outputs, Pipeline, Step, StepError, StepInput, qa_schema
from .caption import CAPTION_PROMPT, CAPTION_SYSTEM_PROMPT, IMAGE_CAPTION
from .mcq import VISUAL_MCQ
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
from .two_step import IMAGE_VQA_TWO_STEP, QUESTION_PROMPT, QUESTION_SYSTEM_PROMPT

PIPELINES: dict[str, Pipeline] = {
    pipeline.name: pipeline
    for pipeline in (
        CONTEXT_VQA, IMAGE_VQA, IMAGE_QA, IMAGE_CAPTION, IMAGE_VQA_TWO_STEP, VISUAL_MCQ, SCALE_CAPTION,
    )
}


def pipeline(name: str) -> Pipeline:
    """The pipeline called ``name`` (the config schema admits only known names)."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r} (known: {', '.join(PIPELINES)})") from None


__all__ = [
    "ASSISTANT_SYSTEM_PROMPT", "CAPTION_PROMPT", "CAPTION_SYSTEM_PROMPT", "IMAGE_QA_PROMPT",
    "IMAGE_QA_SYSTEM_PROMPT", "IMAGE_VQA_PROMPT", "ONE", "PIPELINES", "QUESTION_PROMPT",
    "QUESTION_SYSTEM_PROMPT", "SKVQA_PROMPT", "Answer", "Ask", "Outputs", "Pipeline", "Step", "StepError",
    "StepInput", "pipeline", "qa_schema",
]
