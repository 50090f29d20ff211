"""The OpenAI Batch API backend: one shard's requests as batch jobs, at the batch price.

Per run: the pending tasks become JSONL lines (one chat-completions request body each,
the same body the online backend sends), split into as many batch input files as the
provider's limits need; each file is uploaded and a batch created on
``/v1/chat/completions``. Every batch is recorded in a state file (atomically, before
any waiting), then polled with a growing interval until it ends.

Nothing is paid twice: a run that was killed and starts again re-attaches to the
batches its state file records for the tasks it is asked about, and submits only the
tasks no recorded batch holds. A batch whose creation was interrupted (file uploaded,
batch id not yet recorded) is found again by its input file.

Lines that fail in a way another attempt may fix (a 5xx or 429 status, an error-file
line, an empty answer, a line an expired, failed or cancelled batch never ran) go into
a follow-up batch, at most ``api.max_retries`` times, or to the online backend when
``fallback`` is ``"online"``. A line the provider rejects (400-class status) fails its
record; a refused key or unknown model stops the run, as online.

This module holds the backend and its run (attach, submit, wait, collect, retry); the
state file is ``batch_state``, the request and result lines ``batch_lines``, the input
files and the server calls ``batch_submit``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import openai

from .api import ApiBackend, ApiSettings, api_key
from .base import Backend, GenerationTask, OnOutcome, OnRetry, Outcome, Sampling
from .batch_lines import line_answer, missing_reason, request_lines
from .batch_state import BatchState, state_digest
from .batch_submit import BatchClient, input_files, log
from .openai_protocol import RecordFailure, Retryable

TERMINAL = ("completed", "expired", "failed", "cancelled")


@dataclass(frozen=True)
class BatchSettings:
    """The ``batch:`` section of the validated config (defaults live in the schema)."""

    poll_s: float
    max_poll_s: float
    fallback: str  # "none" | "online"
    max_requests: int
    max_file_mb: float
    completion_window: str
    discount: float  # batch price / online price, for the cost estimate only


@dataclass
class _Flight:
    """A batch being waited for, and the tasks of this run it answers."""

    entry: dict
    task_ids: list[str]
    started: float


class BatchBackend:
    """Generates answers through the OpenAI Batch API of any compatible base URL."""

    def __init__(
        self, api: ApiSettings, settings: BatchSettings, sampling: Sampling, max_pixels: int,
        state_path: str | Path, fallback: Backend | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if settings.fallback not in ("none", "online"):
            raise ValueError(f"batch.fallback must be 'none' or 'online', not {settings.fallback!r}")
        self.api, self.settings, self.sampling = api, settings, sampling
        self.max_pixels = max_pixels
        self.state_path = Path(state_path)
        self.fallback = fallback
        if fallback is None and settings.fallback == "online":
            self.fallback = ApiBackend(api, sampling, max_pixels)
        self.sleep = sleep

    def repairer(self, max_tokens: int, json_schema: dict | None) -> BatchBackend:
        sampling = replace(self.sampling, max_tokens=max_tokens,
                           json_schema=json_schema or self.sampling.json_schema)
        fallback = self.fallback.repairer(max_tokens, json_schema) if self.fallback else None
        return BatchBackend(self.api, self.settings, sampling, self.max_pixels, self.state_path,
                            fallback, self.sleep)

    def identity(self) -> dict:
        # Batch lines go to the same model with the same request bodies as online ones,
        # so both backends share one identity: a journal written by one serves the other.
        return ApiBackend(self.api, self.sampling, self.max_pixels).identity()

    def run(self, tasks: list[GenerationTask], on_outcome: OnOutcome, on_retry: OnRetry | None = None) -> None:
        key = api_key(self.api.key_env)
        client = openai.OpenAI(api_key=key, base_url=self.api.base_url, timeout=self.api.timeout_s,
                               max_retries=3)
        try:
            calls = BatchClient(client, self.api.key_env, self.api.timeout_s, self.settings.completion_window,
                                self.state_path)
            _Run(self, calls, tasks, on_outcome, on_retry).go()
        finally:
            client.close()

    def task_digest(self, task: GenerationTask) -> str:
        """What a recorded line must match to stand for ``task`` (prompt, images, seed)."""
        prompt = task.prompt
        return state_digest([prompt.system, prompt.turns, prompt.images, task.seed, self.max_pixels])


class _Run:
    """One call of ``BatchBackend.run``."""

    def __init__(self, backend: BatchBackend, calls: BatchClient, tasks: list[GenerationTask],
                 on_outcome: OnOutcome, on_retry: OnRetry | None = None):
        self.backend, self.calls, self.on_outcome = backend, calls, on_outcome
        self.on_retry = on_retry or (lambda kind: None)
        self.api, self.settings = backend.api, backend.settings
        self.tasks = {task.id: task for task in tasks}
        self.digests = {task.id: backend.task_digest(task) for task in tasks}
        self.identity = state_digest(backend.identity())
        self.state = BatchState(backend.state_path)
        self.flights: dict[str, _Flight] = {}
        self.tries: dict[str, int] = defaultdict(int)  # batches holding the task, this run
        self.reported: set[str] = set()

    # -- bookkeeping

    def _history(self, task_id: str) -> int:
        """How many recorded batches held this task (its attempts so far)."""
        return self.state.attempts(self.identity, task_id, self.digests[task_id])

    def _report(self, outcome: Outcome) -> None:
        if outcome.id in self.reported:
            return
        self.reported.add(outcome.id)
        self.on_outcome(outcome)

    def _fly(self, entry: dict, task_ids: list[str]) -> None:
        for task_id in task_ids:
            self.tries[task_id] += 1
        self.flights[entry["id"]] = _Flight(entry, task_ids, time.monotonic())

    # -- the run

    def go(self) -> None:
        fresh = self._attach()
        self._submit(fresh)
        self._wait()

    def _attach(self) -> list[GenerationTask]:
        """Re-attach to recorded batches for the asked tasks; the others are fresh."""
        latest = self.state.latest(self.identity, self.digests)
        groups: dict[int, list[str]] = defaultdict(list)
        for task_id, entry in latest.items():
            groups[id(entry)].append(task_id)
        by_key = {id(entry): entry for entry in latest.values()}
        fresh = [task for task_id, task in self.tasks.items() if task_id not in latest]
        for key, task_ids in groups.items():
            entry = by_key[key]
            if entry.get("id") is None and not self._recover(entry):
                fresh.extend(self.tasks[t] for t in task_ids)
                continue
            log(f"re-attaching to batch {entry['id']} ({len(task_ids)} of its lines are wanted)")
            self._fly(entry, task_ids)
        return fresh

    def _recover(self, entry: dict) -> bool:
        """A batch whose creation was interrupted: find it by its input file, or create it."""
        file_id = entry["input_file_id"]
        found = self.calls.find(file_id)
        if found is not None:
            entry["id"] = found
            self.state.save()
            return True
        try:
            entry["id"] = self.calls.create(file_id)
        except (openai.NotFoundError, openai.BadRequestError) as err:
            log(f"input file {file_id} cannot be used again ({err}); its lines are submitted afresh")
            entry["abandoned"] = True
            entry["tasks"] = {}
            self.state.save()
            return False
        self.state.save()
        return True

    # -- submitting

    def _submit(self, tasks: list[GenerationTask]) -> None:
        """Batch input files within the provider's limits, uploaded; a batch for each."""
        backend = self.backend
        lines = request_lines(tasks, self.api.model, backend.sampling, backend.max_pixels, self._report)
        files = input_files(lines, self.settings.max_requests, self.settings.max_file_mb, self.state.path.parent,
                            self._report)
        for handle, task_ids, size in files:
            file_id = self.calls.upload(handle)
            # recorded before the batch exists: a kill from here on cannot cost a second upload's lines
            entry = self.state.add({
                "id": None, "input_file_id": file_id, "identity": self.identity,
                "tasks": {t: self.digests[t] for t in task_ids}, "created": round(time.time(), 3),
            })
            entry["id"] = self.calls.call(lambda: self.calls.create(file_id))
            self.state.save()
            self._fly(entry, task_ids)
            log(f"submitted batch {entry['id']}: {len(task_ids)} lines, {size / 2**20:.2f} MB")

    # -- waiting and collecting

    def _wait(self) -> None:
        delay = self.settings.poll_s
        while self.flights:
            submitted = False
            for batch_id in list(self.flights):
                batch = self._retrieve(batch_id)
                if batch is None or batch.status not in TERMINAL:
                    continue
                flight = self.flights.pop(batch_id)
                submitted |= self._collect(batch, flight)
            if submitted:
                delay = self.settings.poll_s
            elif self.flights:
                self.backend.sleep(delay)
                delay = min(delay * 1.5, self.settings.max_poll_s)

    def _retrieve(self, batch_id: str):
        try:
            return self.calls.retrieve(batch_id)
        except openai.NotFoundError:
            flight = self.flights.pop(batch_id)
            log(f"batch {batch_id} is unknown to the server; its {len(flight.task_ids)} lines are resubmitted")
            flight.entry["abandoned"] = True
            self.state.save()
            self._retry([(t, "the batch was lost by the server") for t in flight.task_ids])
            return None

    def _collect(self, batch, flight: _Flight) -> bool:
        """Report a finished batch's lines; returns whether a follow-up batch was submitted."""
        wanted = set(flight.task_ids)
        results: dict[str, dict] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            for line in self.calls.file_lines(file_id):
                if line.get("custom_id") in wanted:
                    results.setdefault(line["custom_id"], line)
        ended = next((t for t in (batch.completed_at, batch.expired_at, batch.cancelled_at, batch.failed_at) if t),
                     None)
        latency = ended - batch.created_at if ended and batch.created_at else time.monotonic() - flight.started
        missing = missing_reason(batch)
        self._log_end(batch, missing, len(wanted - results.keys()))
        retry: list[tuple[str, str]] = []
        for task_id in flight.task_ids:
            line = results.get(task_id)
            if line is None:
                retry.append((task_id, missing))
                continue
            attempts = self._history(task_id)
            try:
                answer, generation = line_answer(line, self.api.model, self.api.key_env, self.calls.where)
            except Retryable as failure:
                retry.append((task_id, f"{failure.kind}: {failure}"))
                continue
            except RecordFailure as failure:
                self._report(Outcome(task_id, error=str(failure), error_kind=failure.kind,
                                     generation={"attempts": attempts, "batch_id": batch.id}))
                continue
            self._report(Outcome(task_id, answer=answer, generation={
                **generation, "backend": "batch", "seed": self.tasks[task_id].seed, "latency_s": round(latency, 3),
                "attempts": attempts, "batch_id": batch.id,
            }))
        return self._retry(retry)

    @staticmethod
    def _log_end(batch, missing: str, unfinished: int) -> None:
        counts = batch.request_counts
        log(f"batch {batch.id} {batch.status}"
            + (f": {counts.completed} completed, {counts.failed} failed of {counts.total}" if counts else ""))
        if batch.status == "cancelled":
            log(f"batch {batch.id} was cancelled (by the user or on the provider's side); "
                f"its {unfinished} unfinished lines are resubmitted")
        elif batch.status in ("expired", "failed") and unfinished:
            log(f"{missing}; {unfinished} unfinished lines are resubmitted")

    def _retry(self, failed: list[tuple[str, str]]) -> bool:
        """Failed lines: another batch (or online) while attempts remain, else a failure."""
        again: list[GenerationTask] = []
        for task_id, reason in failed:
            if self.tries[task_id] > self.api.max_retries:
                attempts = self._history(task_id)
                self._report(Outcome(task_id, error=f"gave up after {attempts} batch attempts; last: {reason}",
                                     error_kind="retries_exhausted", generation={"attempts": attempts}))
            else:
                again.append(self.tasks[task_id])
        if not again:
            return False
        for _ in again:
            self.on_retry("batch_line")
        if self.settings.fallback == "online":
            log(f"{len(again)} failed lines go to the online API (batch.fallback: online)")
            self.backend.fallback.run(again, self._report, self.on_retry)
            return False
        log(f"{len(again)} failed lines go into a follow-up batch")
        self._submit(again)
        return True
