"""``image_caption``: one request per record with its images, the answer a caption (upstream's
``api_pipelines/image_caption.py`` and ``gpu_pipelines/image2caption.py``: the same system prompt,
output ``caption``).

The caption is the answer without chat-template tokens or reasoning, stripped. Its status is
what the code checked: ``ok`` when it is not empty, not cut off at ``max_tokens`` and neither
opens with chatter, holds markup nor refuses; ``none`` when empty (``no_caption``); else
``partial`` with the issue (``truncated``, ``chatter``, ``markup_in_text``, ``refusal``). A
cut-off caption is asked again with more tokens by the repair (``repair.enabled``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..quality.parse import Parse, plain_issues, read_plain
from .base import Outputs, Pipeline, Step, StepInput

CAPTION_SYSTEM_PROMPT = (
    "You are a image caption generator. Your task is to generate a concise and informative caption "
    "for the given image content."
)
CAPTION_PROMPT = "Describe the image."


def read_caption(inp: StepInput) -> Parse:
    """The record's ``caption`` and what the checks found."""
    answer = inp.results["caption"]
    caption = read_plain(answer.text)
    issues = ["truncated"] if answer.cut_off else []
    issues += plain_issues(caption) if caption else ["no_caption"]
    return Outputs({"caption": caption}, issues=issues, truncated=answer.cut_off).parse(usable=bool(caption))


def caption_turns(fields: Mapping[str, Any]) -> list[dict]:
    """The training turn of a caption: the instruction, answered by the caption."""
    return [{"question": CAPTION_PROMPT, "answer": fields["caption"]}] if fields.get("caption") else []


IMAGE_CAPTION = Pipeline(
    "image_caption",
    (Step("caption", CAPTION_SYSTEM_PROMPT, CAPTION_PROMPT, images=True, schema=None),),
    fields=("caption",), pairs=False, reader=read_caption, training=caption_turns,
    about="a caption of the image",
)
