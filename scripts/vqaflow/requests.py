"""The shard request loop, the one every request stage runs (generate, repair, verify, the
preview): plan, ask, collect.

- plan: each request is filed in the journal under its record's id and a fingerprint of
  everything that shapes its answer; the shard's journal holds a stored answer, a stored
  permanent failure, or nothing (then it is to ask);
- ask: the backend runs the rest; answers and permanent failures are journaled as they
  arrive (a killed job loses nothing paid for), failures another attempt may fix are not
  (the next run asks again: ``transient``);
- collect: answers and failures by request key (its task's id: the record id for a record's one
  request, unique for each of a record's several), every answer used noted under its record
  with whether this run asked it (:attr:`ShardRequests.used`, for the preview's accounting).

With ``structured_output: auto`` a stage passes ``rebuild`` (its requests for another backend):
a backend asking with a JSON schema then falls back to free text where the endpoint rejects the
schema (:mod:`vqaflow.free_text`).

The fingerprints and per-request seeds live here too, on :mod:`vqaflow.digests`.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from . import free_text
from .backends.base import Backend, GenerationTask, Outcome
from .backends.openai_protocol import SCHEMA_REJECTED
from .digests import value_digest
from .journal import JournalWriter, read_journal
from .logs import tell
from .progress import Progress
from .prompts import Prompt

# failures that another attempt cannot fix; every other kind is retried by the next run
PERMANENT_KINDS = frozenset({"rejected", "image", "prompt", SCHEMA_REJECTED})
# structured_output auto on a "probe" backend: requests asked one at a time, at most this many,
# until one is answered or rejected for the schema; then the rest together
PROBES = 3


def task_seed(seed: int | None, key: str) -> int | None:
    """A per-request seed derived from the run's seed and ``key`` (the record id, or the
    request's content when identical requests are asked once): the first 4 bytes of
    sha256("<seed>:<key>"), as every earlier version derived it, so a run's answers stay
    reproducible across versions."""
    if seed is None:
        return None
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "big")


def content_key(prompt: Prompt, image_digests: list[str]) -> str:
    """What makes two records the same request: system prompt, turns and image bytes."""
    return value_digest([prompt.system, prompt.turns, image_digests])


def fingerprint(identity: dict, task: GenerationTask, image_digests: list[str], max_pixels: int) -> str:
    """A digest of everything that shapes a request's answer."""
    return value_digest({
        "backend": identity,
        "system": task.prompt.system,
        "turns": task.prompt.turns,
        "images": image_digests,
        "max_pixels": max_pixels,
        "seed": task.seed,
    })


def repair_fingerprint(identity: dict, fp: str) -> str:
    """The fingerprint of the repair of the request fingerprinted ``fp``."""
    return value_digest([identity, fp])


def failure_entry(record_id: str, index: int, error: str, kind: str, attempts: int | None = None) -> dict:
    """A failed.jsonl entry: why the record has no answer, and whether to retry it."""
    return {
        "id": record_id, "index": index, "error": error, "kind": kind, "attempts": attempts,
        "transient": kind not in PERMANENT_KINDS,
        "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@dataclass(frozen=True)
class Request:
    """One request of a record: the task (its id is the request key) and its fingerprint.
    ``record``: the record it belongs to, when that is not the task's id (one of a record's
    several requests); its journal entries are filed under the record's id."""

    task: GenerationTask
    fp: str
    record: str | None = None

    @property
    def record_id(self) -> str:
        """The id of the record this request belongs to."""
        return self.record or self.task.id


@dataclass
class Plan:
    """What the journal holds for a set of requests, by request key, and what is left to ask."""

    answers: dict[str, dict] = field(default_factory=dict)
    failures: dict[str, dict] = field(default_factory=dict)
    pending: list[Request] = field(default_factory=list)


@dataclass(frozen=True)
class Used:
    """An answer a record's result rests on: which request (``what``), its journal entry, and
    whether this run asked it (else the journal held it)."""

    what: str
    entry: dict
    asked: bool


class ShardRequests:
    """One shard's journal and the requests asked through it."""

    def __init__(self, journal_path: str | Path, index_of: dict[str, int], retry_rejected: bool):
        self.journal_path = journal_path
        self.name = Path(journal_path).stem  # the shard's name, for the progress lines
        self.journal = read_journal(journal_path)
        self.index_of = index_of
        self.retry_rejected = retry_rejected
        self.used: dict[str, list[Used]] = defaultdict(list)

    def stored(self, record_id: str, fp: str) -> dict | None:
        """The journal's entry for this request, unless it is a rejection to retry."""
        entry = self.journal.get(record_id, {}).get(fp)
        if entry is not None and "error" in entry and self.retry_rejected:
            return None
        return entry

    def failure(self, record_id: str, error: str, kind: str, attempts: int | None = None) -> dict:
        """A failed.jsonl entry for a record of this shard."""
        return failure_entry(record_id, self.index_of[record_id], error, kind, attempts)

    def plan(self, requests: dict[str, Request], what: str) -> Plan:
        """Look every request up in the journal (``requests`` by request key, its task's id)."""
        plan = Plan()
        for key, request in requests.items():
            record_id = request.record_id
            entry = self.stored(record_id, request.fp)
            if entry is None:
                plan.pending.append(request)
            elif "answer" in entry:
                plan.answers[key] = entry
                self.used[record_id].append(Used(what, entry, asked=False))
            else:
                plan.failures[key] = self.failure(record_id, entry["error"], entry["kind"], entry.get("attempts"))
        return plan

    def ask(self, backend: Backend, pending: list[Request], what: str, note: dict | None = None,
            progress: Progress | None = None) -> tuple[dict[str, dict], dict[str, dict]]:
        """Run the pending requests through ``backend``; answers and permanent failures are
        journaled as they arrive (``note``: added to each answer's ``generation``), and progress
        lines tell how far they are (the backend reports its retries; ``progress``: a stage's
        running count this call adds to, else one of its own). Returns (answers, failures) by
        request key."""
        answers: dict[str, dict] = {}
        failures: dict[str, dict] = {}
        if not pending:
            return answers, failures
        asked = {request.task.id: request for request in pending}
        shown = nullcontext(progress) if progress else Progress(f"{self.name} {what}", len(pending))
        with JournalWriter(self.journal_path) as writer, shown as progress:

            def on_outcome(outcome: Outcome) -> None:
                request = asked[outcome.id]
                record_id, fp = request.record_id, request.fp
                attempts = outcome.generation.get("attempts")
                if outcome.ok:
                    generation = {**outcome.generation, **note} if note else outcome.generation
                    entry = {"id": record_id, "fp": fp, "answer": outcome.answer, "generation": generation}
                    writer.append(entry)
                    answers[outcome.id] = entry
                    self.used[record_id].append(Used(what, entry, asked=True))
                else:
                    kind = outcome.error_kind or "error"
                    if kind in PERMANENT_KINDS:
                        writer.append({"id": record_id, "fp": fp, "error": outcome.error, "kind": kind,
                                       "attempts": attempts})
                    failures[outcome.id] = self.failure(record_id, outcome.error, kind, attempts)
                progress.outcome(outcome.ok)

            backend.run([request.task for request in pending], on_outcome, on_retry=progress.retry)
        return answers, failures

    def as_asked(self, backend: Backend) -> Backend:
        """``backend`` as this shard asks it under ``structured_output: auto``: its free-text
        twin once its endpoint rejected the schema here."""
        if backend.sampling.json_schema is not None and free_text.takes_schema(self.journal_path,
                                                                                backend.identity()) is False:
            return backend.free_text()
        return backend

    def run(self, backend: Backend, requests: dict[str, Request], what: str,
            describe: Callable[[Plan], str] | None = None,
            rebuild: Callable[[Backend], dict[str, Request]] | None = None) -> tuple[dict[str, dict], dict[str, dict]]:
        """Plan, ask, collect: every request's answer or failure by request key (stored ones
        first; ``requests`` by request key, its task's id). ``describe``: the plan in a line for
        the log, told before asking. ``rebuild`` (``structured_output: auto``): the same requests
        for another backend; given, a backend asking with a JSON schema falls back to free text
        where it is rejected."""
        if rebuild is not None and backend.sampling.json_schema is not None and backend.schema_check != "never":
            return self._run_auto(backend, requests, what, describe, rebuild)
        plan = self.plan(requests, what)
        if describe is not None:
            tell(describe(plan))
        answers, failures = self.ask(backend, plan.pending, what)
        return {**plan.answers, **answers}, {**plan.failures, **failures}

    def _run_auto(self, backend: Backend, requests: dict[str, Request], what: str,
                  describe: Callable[[Plan], str] | None,
                  rebuild: Callable[[Backend], dict[str, Request]]) -> tuple[dict[str, dict], dict[str, dict]]:
        """``run`` asking with the schema until the endpoint rejects it (a stored rejection
        counts), then in free text: the rejected records and every one not asked yet. An
        answer the journal holds for either form is used."""
        plan = self.plan(requests, what)
        rejected = {rid for rid, failure in plan.failures.items() if failure["kind"] == SCHEMA_REJECTED}
        free, takes = backend.free_text(), free_text.takes_schema(self.journal_path, backend.identity())
        if takes is False:
            rest = rejected | {request.task.id for request in plan.pending}
            free_plan = self.plan({rid: r for rid, r in rebuild(free).items() if rid in rest}, what)
            plan = Plan({**plan.answers, **free_plan.answers},
                        {**{k: v for k, v in plan.failures.items() if k not in rest}, **free_plan.failures},
                        free_plan.pending)
            if describe is not None:
                tell(describe(plan))
            answers, failures = self.ask(free, plan.pending, what, free_text.FALLBACK_NOTE)
            return {**plan.answers, **answers}, {**plan.failures, **failures}
        if describe is not None:
            tell(describe(plan))
        answers, failures = dict(plan.answers), dict(plan.failures)
        pending = plan.pending
        if not rejected:
            asked, failed, pending = self._probe(backend, pending, what, probe=takes is None)
            answers.update(asked)
            failures.update(failed)
            rejected = {rid for rid, failure in failed.items() if failure["kind"] == SCHEMA_REJECTED}
            if asked and not rejected and takes is None:  # said once: later stages need not probe
                free_text.mark(self.journal_path, backend.identity(), what, True)
        if not rejected:
            return answers, failures
        error = failures[min(rejected)]["error"]
        path = free_text.mark(self.journal_path, backend.identity(), what, False, error)
        tell(free_text.notice(self.name, backend.identity(), what, error, path))
        rest = rejected | {request.task.id for request in pending}
        for rid in rejected:
            del failures[rid]
        free_plan = self.plan({rid: r for rid, r in rebuild(free).items() if rid in rest}, what)
        asked, failed = self.ask(free, free_plan.pending, what, free_text.FALLBACK_NOTE)
        return {**answers, **free_plan.answers, **asked}, {**failures, **free_plan.failures, **failed}

    def _probe(self, backend: Backend, pending: list[Request], what: str,
               probe: bool = True) -> tuple[dict[str, dict], dict[str, dict], list[Request]]:
        """Ask with the schema: with ``probe`` on a "probe" backend one request at a time (at
        most :data:`PROBES`) until one is answered or rejected for the schema, then the rest
        together unless it was rejected; else all at once. Returns the answers, the failures
        and the requests not asked."""
        answers: dict[str, dict] = {}
        failures: dict[str, dict] = {}
        probes = PROBES if probe and backend.schema_check == "probe" else 0
        if not pending:
            return answers, failures, []
        with Progress(f"{self.name} {what}", len(pending)) as progress:  # one count for probes and rest
            while pending and probes and not answers:
                asked, failed = self.ask(backend, pending[:1], what, progress=progress)
                answers.update(asked)
                failures.update(failed)
                pending, probes = pending[1:], probes - 1
                if any(failure["kind"] == SCHEMA_REJECTED for failure in failed.values()):
                    return answers, failures, pending
            asked, failed = self.ask(backend, pending, what, progress=progress)
        return {**answers, **asked}, {**failures, **failed}, []
