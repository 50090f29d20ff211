"""Turning a record into what is sent: system prompt, chat turns and images."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .columns import Columns
from .inputs.image_refs import image_refs
from .pipelines import Ask, Pipeline

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
class PromptSettings:
    """How records become prompts (built from the validated config)."""

    pipeline: Pipeline
    columns: Columns
    system_prompt: str | None
    prompt: str | None
    image_root: str
    max_pixels: int
    seed: int | None
    dedup_requests: bool  # seeds derive from the request's content: identical requests are one
    structured_output: bool | str = False  # each step asks with its JSON schema; "auto": free text where rejected
    pipeline_settings: dict = field(default_factory=dict)  # the config section named like the pipeline


@dataclass(frozen=True)
class Prompt:
    """What is sent for one record: a system prompt, chat turns and images.

    The images belong to the first user turn; ``images`` holds their references as
    written in the record (paths are resolved when the image is prepared).
    """

    system: str | None
    turns: tuple[tuple[str, str], ...]
    images: tuple[str, ...]


def record_images(record: dict, columns: Columns) -> tuple[str, ...]:
    """The image references of a record: paths, URLs, or data URLs of embedded bytes."""
    return image_refs(record.get(columns.image))


def _turns(record: dict, columns: Columns, record_id: str) -> tuple[str | None, list[tuple[str, str]]]:
    system = None
    turns: list[tuple[str, str]] = []
    for position, turn in enumerate(record.get(columns.conversation) or []):
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


def build_prompt(record: dict, record_id: str, settings: PromptSettings) -> Prompt:
    """Turn a record into a :class:`Prompt`.

    The user text is the record's conversation when it has a user turn with text,
    otherwise the config's ``prompt``, otherwise the pipeline's default; a user turn that
    holds only ``<image>`` gets that default text too. A system turn in the conversation
    wins over the config's ``system_prompt``, which wins over the pipeline's default.
    """
    record_system, turns = _turns(record, settings.columns, record_id)
    default = settings.prompt or settings.pipeline.prompt
    if not any(role == "user" for role, _ in turns):
        turns = [("user", default)]
    else:
        turns = [(role, text or default if role == "user" else text) for role, text in turns]
    system = record_system or settings.system_prompt or settings.pipeline.system_prompt
    return Prompt(system=system, turns=tuple(turns), images=record_images(record, settings.columns))


def ask_prompt(ask: Ask, system: str, images: tuple[str, ...]) -> Prompt:
    """The prompt of a request of a step after the first: its text, its system prompt (``system``:
    the step's, unless the request has its own), with ``images`` when it sends them."""
    return Prompt(ask.system or system, (("user", ask.text),), images if ask.images else ())


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
