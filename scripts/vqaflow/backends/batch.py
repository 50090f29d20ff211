"""The OpenAI Batch API backend: one shard's requests as batch jobs, at the batch price.

Per run: the pending tasks become JSONL lines (one chat-completions request body each,
the same body the online backend sends; the ``custom_id`` is the task's line key), split
into as many batch input files as the provider's limits need; each file is uploaded and
a batch created on ``/v1/chat/completions`` with metadata naming the run, shard, stage
and identity. Every batch is recorded in a state file (atomically, before any waiting),
then polled with a growing interval until it ends.

Nothing is paid twice: before submitting, a run lists the provider's batches and attaches
to the newest batch holding each of its lines (``batch_recover``), whatever happened to
the state files (lost, corrupt, stale) or the shard layout; only lines no batch holds are
submitted. Result files are downloaded to temporary files and read line by line: a line
that cannot be read costs only the lines it may have held (asked again).

Lines that fail in a way another attempt may fix (a 5xx or 429 status, an error-file
line, an empty answer, a line an expired, cancelled or queue-full batch never ran) go
into a follow-up batch, at most ``api.max_retries`` times, or to the online backend when
``fallback`` is ``"online"``. A line the provider rejects (400-class status, or named by
a batch's validation errors) fails its record, and so does every line of a batch that
failed validation for a reason another batch would meet again; a refused key or
unknown model stops the run, as online. Once a batch's lines are stored its input file
is deleted (``batch.keep_files``).

This module holds the backend and its run (attach, submit, wait, collect, retry); the
state file is ``batch_state``, finding batches again ``batch_recover``, the request and
result lines ``batch_lines``, the input files and the server calls ``batch_submit``.
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import openai

from .api import ApiSettings, api_key
from .base import Backend, FatalBackendError, GenerationTask, OnOutcome, OnRetry, Outcome, Sampling
from .batch_lines import line_answer, missing_reason, request_lines, validation_failures
from .batch_recover import TERMINAL, Finder, Scope
from .batch_state import BatchState, line_key, log, state_digest
from .batch_submit import BatchClient, DownloadFailed, input_files, read_lines
from .openai_protocol import RecordFailure, Retryable

DOWNLOAD_TRIES = 5  # a result file that cannot be downloaded this often stops the job (the batch stays recorded)


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
    keep_files: bool  # keep uploaded input files once their batch's lines are stored


@dataclass
class _Flight:
    """A batch being waited for, and the tasks of this run it answers."""

    entry: dict
    task_ids: list[str]
    started: float
    download_failures: int = 0


class BatchBackend:
    """Generates answers through the OpenAI Batch API of any compatible base URL.

    With ``structured_output: auto`` the lines carry the JSON schema; when a batch's lines are
    rejected for it, the request loop asks those records once more, in free text, through
    :meth:`free_text` (a new batch)."""

    schema_check = "all"

    def __init__(
        self, api: ApiSettings, settings: BatchSettings, sampling: Sampling, max_pixels: int,
        state_path: str | Path, online: Backend,
        sleep: Callable[[float], None] = time.sleep, stage: str = "generate",
    ):
        """``online``: the same endpoint asked online (built by the factory), whose identity
        batch lines share and which answers failed lines with ``fallback: online``."""
        if settings.fallback not in ("none", "online"):
            raise ValueError(f"batch.fallback must be 'none' or 'online', not {settings.fallback!r}")
        self.api, self.settings, self.sampling = api, settings, sampling
        self.max_pixels = max_pixels
        self.state_path = Path(state_path)
        self.online = online
        self.fallback = online if settings.fallback == "online" else None
        self.sleep = sleep
        self.stage = stage

    def repairer(self, max_tokens: int, json_schema: dict | None) -> BatchBackend:
        other = copy.copy(self)
        other.sampling = replace(self.sampling, max_tokens=max_tokens,
                                 json_schema=json_schema or self.sampling.json_schema)
        other.online = self.online.repairer(max_tokens, json_schema)
        other.fallback = other.online if self.fallback else None
        other.stage = "repair"
        return other

    def free_text(self) -> BatchBackend:
        other = copy.copy(self)
        other.sampling = replace(self.sampling, json_schema=None)
        other.online = self.online.free_text()
        other.fallback = other.online if self.fallback else None
        return other

    def identity(self) -> dict:
        # Batch lines go to the same model with the same request bodies as online ones,
        # so both backends share one identity: a journal written by one serves the other.
        return self.online.identity()

    def run(self, tasks: list[GenerationTask], on_outcome: OnOutcome, on_retry: OnRetry | None = None) -> None:
        if not tasks:
            return
        key = api_key(self.api.key_env)
        client = openai.OpenAI(api_key=key, base_url=self.api.base_url, timeout=self.api.timeout_s,
                               max_retries=3)
        try:
            calls = BatchClient(client, self.api.key_env, self.api.timeout_s, self.settings.completion_window,
                                self.state_path.parent)
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
        self.identity = state_digest(backend.identity())
        self.keys = {task.id: line_key(self.identity, task.id, backend.task_digest(task)) for task in tasks}
        self.state = BatchState(backend.state_path)
        self.scope = Scope.of(backend.state_path, backend.stage)
        self.flights: dict[str, _Flight] = {}
        self.tries: dict[str, int] = defaultdict(int)  # batches holding the task, this run
        self.reported: set[str] = set()

    # -- bookkeeping

    def _history(self, task_id: str) -> int:
        """How many recorded batches held this task (its attempts so far)."""
        return self.state.attempts(self.keys[task_id])

    def _report(self, outcome: Outcome) -> None:
        if outcome.id in self.reported:
            return
        self.reported.add(outcome.id)
        self.on_outcome(outcome)

    def _fly(self, entry: dict, task_ids: list[str]) -> None:
        for task_id in task_ids:
            self.tries[task_id] += 1
        self.flights[entry["id"]] = _Flight(entry, task_ids, time.monotonic())

    def _finished(self, entry: dict) -> None:
        """A batch whose lines are stored: its input file is deleted (unless ``keep_files``)."""
        if self.settings.keep_files or entry.get("input_deleted"):
            return
        if self.calls.delete_file(entry["input_file_id"]):
            entry["input_deleted"] = True
            self.state.save()

    # -- the run

    def go(self) -> None:
        fresh = self._attach()
        self._submit(fresh)
        self._wait()

    def _attach(self) -> list[GenerationTask]:
        """Attach to the batches holding the asked tasks' lines; the others are fresh."""
        task_of = {key: task_id for task_id, key in self.keys.items()}
        held = Finder(self.state, self.calls, self.scope, self.identity).locate(set(task_of))
        groups: dict[str, list[str]] = defaultdict(list)
        entries = {}
        for key, entry in held.items():
            groups[entry["id"]].append(task_of[key])
            entries[entry["id"]] = entry
        for batch_id, task_ids in groups.items():
            log(f"re-attaching to batch {batch_id} ({len(task_ids)} of its lines are wanted)")
            self._fly(entries[batch_id], task_ids)
        return [task for task_id, task in self.tasks.items() if self.keys[task_id] not in held]

    # -- submitting

    def _submit(self, tasks: list[GenerationTask]) -> None:
        """Batch input files within the provider's limits, uploaded; a batch for each."""
        backend = self.backend
        lines = request_lines(tasks, self.api.model, backend.sampling, backend.max_pixels, self._report, self.keys)
        files = input_files(lines, self.settings.max_requests, self.settings.max_file_mb, self.state.path.parent,
                            self._report)
        for handle, task_ids, size, digest in files:
            keys = [self.keys[t] for t in task_ids]
            file_id = self.calls.upload(handle, self.scope.filename())
            # recorded before the batch exists: a kill from here on cannot cost a second upload's lines
            entry = self.state.add({
                "id": None, "input_file_id": file_id, "input_digest": digest, "identity": self.identity,
                "stage": self.scope.stage, "keys": keys, "created": round(time.time(), 3),
            })
            metadata = self.scope.metadata(self.identity, keys, digest)
            entry["id"] = self.calls.call(lambda: self.calls.create(file_id, metadata), "creating a batch")
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
                collected = self._collect(batch, flight)
                if collected is None:  # its files could not be downloaded: polled again
                    self.flights[batch_id] = flight
                submitted |= bool(collected)
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
            self._finished(flight.entry)
            self.state.save()
            self._retry([(t, "the batch was lost by the server") for t in flight.task_ids])
            return None

    def _results(self, batch, flight: _Flight) -> tuple[dict[str, dict], int] | None:
        """This run's lines of a finished batch's output and error files (task id -> line)
        and how many lines could not be read; None when a file could not be downloaded."""
        wanted = {self.keys[t]: t for t in flight.task_ids}
        results: dict[str, dict] = {}
        unreadable = 0
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            try:
                handle = self.calls.download(file_id)
            except DownloadFailed as err:
                flight.download_failures += 1
                if flight.download_failures >= DOWNLOAD_TRIES:
                    raise FatalBackendError(f"{err} ({flight.download_failures} times); batch {batch.id} stays "
                                            "recorded: run again to collect its lines") from None
                log(f"{err}; trying again at the next poll")
                return None
            if handle is None:
                log(f"file {file_id} of batch {batch.id} is gone at the provider; its lines are asked again")
                continue
            with handle:
                for number, line in read_lines(handle):
                    if line is None:
                        unreadable += 1
                        log(f"line {number} of file {file_id} (batch {batch.id}) cannot be read; "
                            "the lines it may have held are asked again")
                    elif line.get("custom_id") in wanted:
                        results.setdefault(wanted[line["custom_id"]], line)
        return results, unreadable

    def _collect(self, batch, flight: _Flight) -> bool | None:
        """Report a finished batch's lines; returns whether a follow-up batch was submitted
        (None: its files could not be downloaded this time)."""
        read = self._results(batch, flight)
        if read is None:
            return None
        results, unreadable = read
        ended = next((t for t in (batch.completed_at, batch.expired_at, batch.cancelled_at, batch.failed_at) if t),
                     None)
        latency = ended - batch.created_at if ended and batch.created_at else time.monotonic() - flight.started
        missing = missing_reason(batch)
        if unreadable:
            missing = f"its line may be one of the {unreadable} unreadable lines of batch {batch.id}'s files"
        self._log_end(batch, missing, len(set(flight.task_ids) - results.keys()))
        rejected, everything = ({}, None)
        if batch.status == "failed":
            rejected, everything = validation_failures(batch, flight.entry["keys"])
        retry: list[tuple[str, str]] = []
        for task_id in flight.task_ids:
            failure = rejected.get(self.keys[task_id]) or everything
            line = results.get(task_id)
            if line is None and failure is None:
                retry.append((task_id, missing))
                continue
            attempts = self._history(task_id)
            try:
                if line is None:
                    raise failure
                answer, generation = line_answer(line, self.api.model, self.api.key_env, self.calls.where)
            except Retryable as failed:
                retry.append((task_id, f"{failed.kind}: {failed}"))
                continue
            except RecordFailure as failed:
                self._report(Outcome(task_id, error=str(failed), error_kind=failed.kind,
                                     generation={"attempts": attempts, "batch_id": batch.id}))
                continue
            self._report(Outcome(task_id, answer=answer, generation={
                **generation, "backend": "batch", "seed": self.tasks[task_id].seed, "latency_s": round(latency, 3),
                "attempts": attempts, "batch_id": batch.id,
            }))
        self._finished(flight.entry)
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
            log(f"{missing}; {unfinished} unfinished lines")

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
