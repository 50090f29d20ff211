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
class Sampling:
    """The ``generation:`` section, plus the JSON schema answers must follow (structured
    output; None for free text). The seed is per task."""

    temperature: float | None
    top_p: float | None
    max_tokens: int
    json_schema: dict | None = None


@dataclass(frozen=True)
class GenerationTask:
    """One record to generate: its prompt (image paths resolved) and sampling seed."""

    id: str
    prompt: Prompt
    seed: int | None = None


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
# told the kind of each failed attempt that is tried again ("rate_limited", "server_error", ...)
OnRetry = Callable[[str], None]


class Backend(Protocol):
    """A backend generates answers for tasks and reports each outcome as it finishes."""

    sampling: Sampling
    # how ``structured_output: auto`` learns whether the endpoint takes the JSON schema:
    # "probe" (requests go one at a time until one is answered or rejected for it),
    # "all" (all go together; those rejected for it are asked again in free text),
    # "never" (the schema is always available: vLLM's structured outputs; auto is true)
    schema_check: str

    def identity(self) -> dict:
        """Settings that shape the answers (model, ...), for the journal fingerprint."""
        ...

    def run(self, tasks: list[GenerationTask], on_outcome: OnOutcome, on_retry: OnRetry | None = None) -> None:
        """Generate every task, calling ``on_outcome`` once per task (and ``on_retry`` for
        each attempt it makes again, if it retries at all).

        Raises :class:`FatalBackendError` when nothing can succeed."""
        ...

    def repairer(self, max_tokens: int, json_schema: dict | None) -> "Backend":
        """The same backend asking with ``max_tokens`` (and ``json_schema`` when given),
        for the repair of cut-off answers; shares whatever is expensive (an engine)."""
        ...

    def free_text(self) -> "Backend":
        """The same backend asking without a JSON schema (``structured_output: auto`` where the
        endpoint rejects it); shares whatever is expensive."""
        ...
