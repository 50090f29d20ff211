"""The repair pass: cut-off or unreadable answers asked once more, with more tokens (and
optionally the JSON schema), through the shard's request loop; the answer that parses
better is kept, with its parse (each answer is read once)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..backends.base import Backend
from ..prompts import PromptSettings
from ..quality.parse import Parse
from ..requests import Request, ShardRequests, repair_fingerprint

PARSE_RANK = {"none": 0, "partial": 1, "ok": 2}


@dataclass(frozen=True)
class RepairSettings:
    """The ``repair:`` section: cut-off or unreadable answers are asked once more."""

    enabled: bool
    max_tokens_factor: float
    structured_output: bool | str  # true, false or "auto" (the schema, free text where it is rejected)


def _rank(parsed: Parse) -> tuple[int, int]:
    return PARSE_RANK[parsed.status], len(parsed.qas)


def _repairs(asked: dict[str, Request], candidates, fixer: Backend) -> dict[str, Request]:
    """The repair requests of the ``candidates`` (record ids) through ``fixer``."""
    identity = fixer.identity()
    return {rid: Request(asked[rid].task, repair_fingerprint(identity, asked[rid].fp)) for rid in candidates}


def repair_answers(requests: ShardRequests, answers: dict[str, dict], parses: dict[str, Parse],
                   asked: dict[str, Request], settings: PromptSettings, backend: Backend,
                   repair: RepairSettings, read: Callable[[str, dict], Parse] | None = None) -> int:
    """Ask cut-off or unreadable ``answers`` (by record id, the answers to the ``asked``
    requests of ``backend``, the pipeline's last step, read into ``parses``) once more; keep
    whichever answer reads better, in ``answers`` and ``parses``. ``read(record id, entry)``: a
    record's outputs with a repair's journal entry as its last answer (default: the entry's
    answer parsed into pairs). Returns the number of records improved."""
    pipeline = settings.pipeline
    schema = pipeline.answer_schema() if repair.structured_output else None
    fixer = backend.repairer(math.ceil(backend.sampling.max_tokens * repair.max_tokens_factor), schema)
    candidates = [rid for rid, entry in answers.items()  # cut off, or nothing readable
                  if entry["generation"].get("finish_reason") == "length" or parses[rid].status == "none"]
    again = _repairs(asked, candidates, fixer)
    rebuild = partial(_repairs, asked, candidates) if repair.structured_output == "auto" else None
    repairs, _ = requests.run(fixer, again, "repair", rebuild=rebuild)
    improved = 0
    if read is None:
        read = lambda rid, entry: pipeline.parse(entry["answer"], entry["generation"].get("finish_reason"))  # noqa: E731
    for rid, entry in repairs.items():
        parsed = read(rid, entry)
        if _rank(parsed) > _rank(parses[rid]):
            answers[rid] = {**entry, "generation": {**entry["generation"], "repaired": True}}
            parses[rid] = parsed
            improved += 1
    return improved
