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
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import openai

from .. import images
from .api import ApiBackend, ApiSettings, api_key
from .base import Backend, FatalBackendError, GenerationTask, OnOutcome, Outcome, Sampling
from .openai_protocol import Retryable, classify_error, read_completion, request_body

ENDPOINT = "/v1/chat/completions"
PREPARE_THREADS = 4
PREPARE_WINDOW = 256
# an input file may be 190 MB: its upload gets at least this long, whatever api.timeout_s says
UPLOAD_TIMEOUT_S = 900.0
STATE_VERSION = 1
TERMINAL = ("completed", "expired", "failed", "cancelled")
# recovering a batch whose id was never recorded: how many listed batches to look through
RECOVERY_LISTING = 1000


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


class _LineFailure(Exception):
    """A line came back without an answer; ``retry`` says whether another attempt may fix it."""

    def __init__(self, kind: str, message: str, retry: bool):
        super().__init__(message)
        self.kind, self.retry = kind, retry


# --- the state file ---------------------------------------------------------------------


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class BatchState:
    """The batches a shard has submitted, kept in a JSON file.

    Each entry: ``id`` (None until the batch exists), ``input_file_id``, ``identity``
    (digest of the backend identity), ``tasks`` (task id -> digest of its request),
    ``created`` (epoch seconds). Entries are appended, never removed, so a task's
    history of batches (its attempts) survives restarts.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: list[dict] = []
        if self.path.exists():
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            self.entries = data.get("batches", [])

    def save(self) -> None:
        _write_atomic(self.path, json.dumps({"version": STATE_VERSION, "batches": self.entries}) + "\n")

    def add(self, entry: dict) -> dict:
        self.entries.append(entry)
        self.save()
        return entry


# --- the backend --------------------------------------------------------------------------


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

    def run(self, tasks: list[GenerationTask], on_outcome: OnOutcome) -> None:
        key = api_key(self.api.key_env)
        client = openai.OpenAI(api_key=key, base_url=self.api.base_url, timeout=self.api.timeout_s,
                               max_retries=3)
        try:
            _Run(self, client, tasks, on_outcome).go()
        finally:
            client.close()

    def task_digest(self, task: GenerationTask) -> str:
        """What a recorded line must match to stand for ``task`` (prompt, images, seed)."""
        prompt = task.prompt
        return _digest([prompt.system, prompt.turns, prompt.images, task.seed, self.max_pixels])


def _log(message: str) -> None:
    print(f"batch: {message}", file=sys.stderr, flush=True)


class _Run:
    """One call of ``BatchBackend.run``."""

    def __init__(self, backend: BatchBackend, client: openai.OpenAI, tasks: list[GenerationTask],
                 on_outcome: OnOutcome):
        self.backend, self.client, self.on_outcome = backend, client, on_outcome
        self.api, self.settings = backend.api, backend.settings
        self.tasks = {task.id: task for task in tasks}
        self.digests = {task.id: backend.task_digest(task) for task in tasks}
        self.identity = _digest(backend.identity())
        self.state = BatchState(backend.state_path)
        self.flights: dict[str, _Flight] = {}
        self.tries: dict[str, int] = defaultdict(int)  # batches holding the task, this run
        self.reported: set[str] = set()

    # -- bookkeeping

    def _history(self, task_id: str) -> int:
        """How many recorded batches held this task (its attempts so far)."""
        digest = self.digests[task_id]
        return sum(1 for e in self.state.entries
                   if e.get("identity") == self.identity and e["tasks"].get(task_id) == digest)

    def _report(self, outcome: Outcome) -> None:
        if outcome.id in self.reported:
            return
        self.reported.add(outcome.id)
        self.on_outcome(outcome)

    def _call(self, action: Callable):
        """A control-plane call; client errors become fatal errors or propagate."""
        try:
            return action()
        except openai.APIError as raw:
            error = classify_error(raw, self.api.key_env)
            if isinstance(error, FatalBackendError):
                raise error from None
            raise

    # -- the run

    def go(self) -> None:
        fresh = self._attach()
        self._submit(fresh)
        self._wait()

    def _attach(self) -> list[GenerationTask]:
        """Re-attach to recorded batches for the asked tasks; the others are fresh."""
        latest: dict[str, dict] = {}
        for entry in self.state.entries:
            if entry.get("identity") != self.identity or entry.get("abandoned"):
                continue
            for task_id, digest in entry["tasks"].items():
                if self.digests.get(task_id) == digest:
                    latest[task_id] = entry
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
            _log(f"re-attaching to batch {entry['id']} ({len(task_ids)} of its lines are wanted)")
            for task_id in task_ids:
                self.tries[task_id] += 1
            self.flights[entry["id"]] = _Flight(entry, task_ids, time.monotonic())
        return fresh

    def _recover(self, entry: dict) -> bool:
        """A batch whose creation was interrupted: find it by its input file, or create it."""
        file_id = entry["input_file_id"]
        listing = self._call(lambda: self.client.batches.list(limit=100))
        for seen, batch in enumerate(listing, 1):
            if batch.input_file_id == file_id:
                entry["id"] = batch.id
                self.state.save()
                return True
            if seen >= RECOVERY_LISTING:
                break
        try:
            entry["id"] = self._create(file_id)
        except (openai.NotFoundError, openai.BadRequestError) as err:
            _log(f"input file {file_id} cannot be used again ({err}); its lines are submitted afresh")
            entry["abandoned"] = True
            entry["tasks"] = {}
            self.state.save()
            return False
        self.state.save()
        return True

    def _create(self, file_id: str) -> str:
        batch = self.client.batches.create(
            input_file_id=file_id, endpoint=ENDPOINT, completion_window=self.settings.completion_window,
            metadata={"vqaflow_state": self.backend.state_path.name},
        )
        return batch.id

    # -- submitting

    def _lines(self, tasks: list[GenerationTask]) -> Iterator[tuple[GenerationTask, bytes]]:
        """Each task's JSONL line, images encoded in a thread pool; an unreadable image fails
        its record instead."""
        backend = self.backend

        def line(task: GenerationTask):
            try:
                urls = [images.data_url(ref, backend.max_pixels) for ref in task.prompt.images]
            except images.ImageError as err:
                return task, None, str(err)
            body = request_body(self.api.model, task, urls, backend.sampling, task.seed)
            request = {"custom_id": task.id, "method": "POST", "url": ENDPOINT, "body": body}
            return task, (json.dumps(request, ensure_ascii=False) + "\n").encode(), None

        with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
            # a window at a time, so encoded images never pile up in memory ahead of the file
            for start in range(0, len(tasks), PREPARE_WINDOW):
                for task, data, error in pool.map(line, tasks[start:start + PREPARE_WINDOW]):
                    if error is not None:
                        self._report(Outcome(task.id, error=error, error_kind="image"))
                        continue
                    yield task, data

    def _submit(self, tasks: list[GenerationTask]) -> None:
        """Batch input files within the provider's limits, uploaded; a batch for each."""
        limit_bytes = int(self.settings.max_file_mb * 1024 * 1024)
        lines = self._sendable(self._lines(tasks), limit_bytes)
        following = next(lines, None)
        self.state.path.parent.mkdir(parents=True, exist_ok=True)
        while following is not None:
            with tempfile.TemporaryFile(dir=self.state.path.parent) as handle:
                chunk: list[str] = []
                size = 0
                while following is not None:
                    task, data = following
                    if chunk and (len(chunk) >= self.settings.max_requests or size + len(data) > limit_bytes):
                        break
                    handle.write(data)
                    chunk.append(task.id)
                    size += len(data)
                    following = next(lines, None)
                self._send(handle, chunk, size)

    def _sendable(self, lines: Iterator[tuple[GenerationTask, bytes]], limit_bytes: int):
        """The lines that fit in a batch file; a larger one fails its record."""
        for task, data in lines:
            if len(data) > limit_bytes:
                self._report(Outcome(
                    task.id, error_kind="rejected",
                    error=f"the request is {len(data) / 2**20:.1f} MB, over the batch file limit "
                          f"of {self.settings.max_file_mb} MB (batch.max_file_mb)",
                ))
            else:
                yield task, data

    def _send(self, handle, task_ids: list[str], size: int) -> None:
        handle.flush()
        handle.seek(0)
        name = f"{self.backend.state_path.stem}-{int(time.time())}.jsonl"
        uploaded = self._call(
            lambda: self.client.with_options(timeout=max(self.api.timeout_s, UPLOAD_TIMEOUT_S)).files.create(
                file=(name, handle, "application/jsonl"), purpose="batch")
        )
        # recorded before the batch exists: a kill from here on cannot cost a second upload's lines
        entry = self.state.add({
            "id": None, "input_file_id": uploaded.id, "identity": self.identity,
            "tasks": {t: self.digests[t] for t in task_ids}, "created": round(time.time(), 3),
        })
        entry["id"] = self._call(lambda: self._create(uploaded.id))
        self.state.save()
        for task_id in task_ids:
            self.tries[task_id] += 1
        self.flights[entry["id"]] = _Flight(entry, task_ids, time.monotonic())
        _log(f"submitted batch {entry['id']}: {len(task_ids)} lines, {size / 2**20:.2f} MB")

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
            return self.client.batches.retrieve(batch_id)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as raw:
            raise classify_error(raw, self.api.key_env) from None
        except openai.NotFoundError:
            flight = self.flights.pop(batch_id)
            _log(f"batch {batch_id} is unknown to the server; its {len(flight.task_ids)} lines are resubmitted")
            flight.entry["abandoned"] = True
            self.state.save()
            self._retry([(t, "the batch was lost by the server") for t in flight.task_ids])
            return None
        except (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError) as err:
            # a batch runs for hours: an outage while it does is waited out, not fatal
            _log(f"polling batch {batch_id} failed ({err}); polling again")
            return None

    def _file_lines(self, file_id: str | None) -> Iterator[dict]:
        if not file_id:
            return
        data = self._call(lambda: self.client.files.content(file_id)).content
        for raw in data.splitlines():
            if raw.strip():
                yield json.loads(raw)

    def _collect(self, batch, flight: _Flight) -> bool:
        """Report a finished batch's lines; returns whether a follow-up batch was submitted."""
        wanted = set(flight.task_ids)
        results: dict[str, dict] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            for line in self._file_lines(file_id):
                if line.get("custom_id") in wanted:
                    results.setdefault(line["custom_id"], line)
        ended = next((t for t in (batch.completed_at, batch.expired_at, batch.cancelled_at, batch.failed_at) if t),
                     None)
        latency = ended - batch.created_at if ended and batch.created_at else time.monotonic() - flight.started
        counts = batch.request_counts
        _log(f"batch {batch.id} {batch.status}"
             + (f": {counts.completed} completed, {counts.failed} failed of {counts.total}" if counts else ""))
        missing = {
            "completed": "the batch output has no line for it",
            "expired": f"batch {batch.id} expired before this line ran",
            "cancelled": f"batch {batch.id} was cancelled before this line ran",
            "failed": f"batch {batch.id} failed: {_batch_errors(batch)}",
        }[batch.status]
        if batch.status == "cancelled":
            _log(f"batch {batch.id} was cancelled (by the user or on the provider's side); "
                 f"its {len(wanted - results.keys())} unfinished lines are resubmitted")
        elif batch.status in ("expired", "failed") and len(wanted - results.keys()):
            _log(f"{missing}; {len(wanted - results.keys())} unfinished lines are resubmitted")
        retry: list[tuple[str, str]] = []
        for task_id in flight.task_ids:
            line = results.get(task_id)
            if line is None:
                retry.append((task_id, missing))
                continue
            attempts = self._history(task_id)
            try:
                answer, generation = self._line_answer(line)
            except _LineFailure as failure:
                if failure.retry:
                    retry.append((task_id, f"{failure.kind}: {failure}"))
                else:
                    self._report(Outcome(task_id, error=str(failure), error_kind=failure.kind,
                                         generation={"attempts": attempts, "batch_id": batch.id}))
                continue
            self._report(Outcome(task_id, answer=answer, generation={
                **generation, "backend": "batch", "seed": self.tasks[task_id].seed, "latency_s": round(latency, 3),
                "attempts": attempts, "batch_id": batch.id,
            }))
        return self._retry(retry)

    def _line_answer(self, line: dict) -> tuple[str, dict]:
        response = line.get("response") or {}
        status = response.get("status_code")
        body = response.get("body") if isinstance(response.get("body"), dict) else {}
        if status == 200:
            try:
                return read_completion(body, self.api.model)
            except Retryable as unreadable:
                raise _LineFailure(unreadable.kind, str(unreadable), retry=True) from None
        error = line.get("error") or (body.get("error") if isinstance(body.get("error"), dict) else None) or {}
        message = error.get("message") or "no reason given"
        if status is None:
            raise _LineFailure("server_error", f"{error.get('code') or 'error'}: {message}", retry=True)
        text = f"HTTP {status}: {message}"
        if status in (401, 403):
            raise FatalBackendError(f"the API refused the key ({text}); check the key in "
                                    f"{self.api.key_env} and api.base_url")
        if status == 404:
            raise FatalBackendError(f"unknown model or endpoint ({text}); check api.model and api.base_url")
        if status >= 500 or status in (408, 409, 429):
            raise _LineFailure("server_error" if status >= 500 else "rate_limited", text, retry=True)
        raise _LineFailure("rejected", text, retry=False)

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
        if self.settings.fallback == "online":
            _log(f"{len(again)} failed lines go to the online API (batch.fallback: online)")
            self.backend.fallback.run(again, self._report)
            return False
        _log(f"{len(again)} failed lines go into a follow-up batch")
        self._submit(again)
        return True


def _batch_errors(batch) -> str:
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    return "; ".join(f"{e.code or 'error'}: {e.message}" + (f" (line {e.line})" if e.line else "")
                     for e in errors) or "no reason given"


