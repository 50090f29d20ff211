"""Column names of input and output records (the config's ``keys:`` section)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Columns:
    """Where a record keeps its id, images and conversation, and where results go."""

    id: str
    image: str
    conversation: str
    answer: str
    refined: str
    qas: str

    @classmethod
    def from_config(cls, keys: dict) -> Columns:
        """From the validated ``keys:`` section (the schema holds the defaults)."""
        return cls(**keys)
