"""The pipelines' default prompts and the conversion of a record into a prompt."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .records import Keys

PIPELINES = ("context_vqa", "image_vqa", "image_qa")

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

IMAGE_QA_SYSTEM_PROMPT = (
    "You are a image question-answer generator. Your task is to generate a "
    "question-answer pair for the given image content."
)

DEFAULT_SYSTEM_PROMPTS: dict[str, str] = {
    "context_vqa": "You are a helpful assistant.",
    "image_vqa": "You are a helpful assistant.",
    "image_qa": IMAGE_QA_SYSTEM_PROMPT,
}

DEFAULT_PROMPTS: dict[str, str] = {
    "context_vqa": SKVQA_PROMPT,
    "image_vqa": (
        "Write question answer pairs about the content of this image: the objects, their "
        "attributes, counts, positions, any visible text and the scene as a whole. Each "
        "question must be answerable from the image alone. Write each pair as\n"
        "Question: ...\nAnswer: ..."
    ),
    "image_qa": (
        "Generate one question-answer pair about this image. Write it as\n"
        "Question: ...\nAnswer: ..."
    ),
}

_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
}
_IMAGE_PLACEHOLDER = re.compile(r"[ \t]*<image>[ \t]*\n?")


class PromptError(ValueError):
    """A record's conversation cannot be turned into a prompt."""


@dataclass(frozen=True)
class Prompt:
    """What is sent for one record: a system prompt, chat turns and images.

    The images belong to the first user turn; ``images`` holds their references as
    written in the record (paths are resolved when the image is prepared).
    """

    system: str | None
    turns: tuple[tuple[str, str], ...]
    images: tuple[str, ...]


def record_images(record: dict, keys: Keys) -> tuple[str, ...]:
    """The image references of a record: none, one path or a list of paths."""
    value = record.get(keys.image)
    if value is None or value == "":
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _turns(record: dict, keys: Keys, record_id: str) -> tuple[str | None, list[tuple[str, str]]]:
    system = None
    turns: list[tuple[str, str]] = []
    for position, turn in enumerate(record.get(keys.conversation) or []):
        speaker = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        role = _ROLES.get(str(speaker).lower())
        if role is None or not isinstance(text, str):
            raise PromptError(
                f"record {record_id!r}: conversation turn {position} needs 'from'/'value' "
                f"(or 'role'/'content') with a known speaker, got {turn!r}"
            )
        text = _IMAGE_PLACEHOLDER.sub("", text).strip()
        if role == "system":
            system = text
        else:
            turns.append((role, text))
    return system, turns


def build_prompt(
    record: dict,
    record_id: str,
    pipeline: str,
    keys: Keys = Keys(),
    system_prompt: str | None = None,
    prompt: str | None = None,
) -> Prompt:
    """Turn a record into a :class:`Prompt`.

    The user text is the record's conversation when it has a user turn, otherwise
    ``prompt`` (the config's override), otherwise the pipeline's default. A system turn
    in the conversation wins over ``system_prompt``, which wins over the default.
    """
    record_system, turns = _turns(record, keys, record_id)
    if not any(role == "user" for role, _ in turns):
        turns = [("user", prompt or DEFAULT_PROMPTS[pipeline])]
    system = record_system or system_prompt or DEFAULT_SYSTEM_PROMPTS[pipeline]
    return Prompt(system=system, turns=tuple(turns), images=record_images(record, keys))


def chat_messages(prompt: Prompt, image_parts: list[dict]) -> list[dict]:
    """Chat messages for a prompt: the image parts (one per image) open the first user
    turn, before its text; the system prompt, if any, comes first."""
    messages: list[dict] = []
    if prompt.system:
        messages.append({"role": "system", "content": prompt.system})
    pending = bool(image_parts)
    for role, text in prompt.turns:
        if role == "user" and pending:
            messages.append({"role": role, "content": [*image_parts, {"type": "text", "text": text}]})
            pending = False
        else:
            messages.append({"role": role, "content": text})
    return messages
