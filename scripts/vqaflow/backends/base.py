"""What every backend takes and gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..prompts import Prompt


class FatalBackendError(RuntimeError):
    """An error that retrying cannot fix for any record (bad key, unknown model):
    the whole run stops at once."""


@dataclass(frozen=True)
class GenerationTask:
    """One record to generate: its prompt (image paths resolved) and sampling seed."""

    id: str
    prompt: Prompt
    seed: int | None = None


@dataclass(frozen=True)
class Sampling:
    """The ``generation:`` section plus structured output (the seed is per task)."""

    temperature: float | None = 0.7
    top_p: float | None = 0.9
    max_tokens: int = 1024
    response_format: dict | None = None


@dataclass
class Outcome:
    """A backend's result for one task: an answer, or an error saying why not."""

    id: str
    answer: str | None = None
    generation: dict = field(default_factory=dict)
    error: str | None = None
    error_kind: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


OnOutcome = Callable[[Outcome], None]


class Backend(Protocol):
    """A backend generates answers for tasks and reports each outcome as it finishes."""

    def identity(self) -> dict:
        """Settings that shape the answers (model, ...), for the journal fingerprint."""
        ...

    def run(self, tasks: list[GenerationTask], on_outcome: OnOutcome) -> None:
        """Generate every task, calling ``on_outcome`` once per task.

        Raises :class:`FatalBackendError` when nothing can succeed."""
        ...
