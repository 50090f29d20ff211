"""The Batch backend's lines: a task's request line for the input file, and what a
finished batch says about each line (an answer, a failure another batch may fix, a
record failure, or a fatal error, classified as online answers are) or, for a batch that
failed validation, about its lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from .. import images
from .base import GenerationTask, Outcome, Sampling
from .openai_protocol import RecordFailure, Retryable, classify_status, read_completion, request_body

ENDPOINT = "/v1/chat/completions"
# validation errors of a whole batch (no line named) that another batch may not meet: the
# organisation's queue of enqueued tokens or requests is full, or the provider failed
TRANSIENT_VALIDATION = frozenset({"token_limit_exceeded", "request_limit_exceeded", "rate_limit_exceeded",
                                  "server_error", "internal_error"})
PREPARE_THREADS = 4
PREPARE_WINDOW = 256


def request_lines(
    tasks: list[GenerationTask], model: str, sampling: Sampling, max_pixels: int,
    on_failure: Callable[[Outcome], None], custom_ids: dict[str, str],
) -> Iterator[tuple[GenerationTask, bytes]]:
    """Each task's JSONL line (its ``custom_id`` from ``custom_ids``), images encoded in a
    thread pool; an unreadable image fails its record (through ``on_failure``) instead."""

    def line(task: GenerationTask):
        try:
            urls = [images.data_url(ref, max_pixels) for ref in task.prompt.images]
        except images.ImageError as err:
            return task, None, str(err)
        body = request_body(model, task, urls, sampling, task.seed)
        request = {"custom_id": custom_ids[task.id], "method": "POST", "url": ENDPOINT, "body": body}
        return task, (json.dumps(request, ensure_ascii=False) + "\n").encode(), None

    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
        # a window at a time, so encoded images never pile up in memory ahead of the file
        for start in range(0, len(tasks), PREPARE_WINDOW):
            for task, data, error in pool.map(line, tasks[start:start + PREPARE_WINDOW]):
                if error is not None:
                    on_failure(Outcome(task.id, error=error, error_kind="image"))
                    continue
                yield task, data


def line_answer(line: dict, model: str, key_env: str, where: str) -> tuple[str, dict]:
    """The answer and ``generation`` fields of an output or error-file line.

    Raises :class:`Retryable` when another batch may fix the line,
    :class:`RecordFailure` when the provider rejected it, and :class:`FatalBackendError`
    for a refused key or an unknown model (see :func:`classify_status`)."""
    response = line.get("response") or {}
    if not isinstance(response, dict):
        raise Retryable("bad_response", f"the batch line's response is not an object: {str(response)[:80]!r}")
    status = response.get("status_code")
    body = response.get("body") if isinstance(response.get("body"), dict) else {}
    if status == 200:
        return read_completion(body, model)
    error = line.get("error") or (body.get("error") if isinstance(body.get("error"), dict) else None) or {}
    error = error if isinstance(error, dict) else {"message": str(error)}
    message = error.get("message") or "no reason given"
    if not isinstance(status, int):
        raise Retryable("server_error", f"{error.get('code') or 'error'}: {message}")
    raise classify_status(status, message, key_env, where)


def missing_reason(batch) -> str:
    """Why a finished batch has no line for a task it held."""
    return {
        "completed": "the batch output has no line for it",
        "expired": f"batch {batch.id} expired before this line ran",
        "cancelled": f"batch {batch.id} was cancelled before this line ran",
        "failed": f"batch {batch.id} failed: {_batch_errors(batch)}",
    }[batch.status]


def _batch_errors(batch) -> str:
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    return "; ".join(f"{e.code or 'error'}: {e.message}" + (f" (line {e.line})" if e.line else "")
                     for e in errors) or "no reason given"


def validation_failures(batch, keys: list[str]) -> tuple[dict[str, RecordFailure], RecordFailure | None]:
    """What a batch that failed validation says: the lines it names (line key -> a
    permanent failure with the provider's message), and a failure for every line when an
    error names no line and another batch would meet it again (None when it may pass:
    the queue was full, the provider failed). ``keys`` are the batch's lines in file order."""
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    per_line: dict[str, RecordFailure] = {}
    whole = []
    for error in errors:
        text = f"{error.code or 'error'}: {error.message or 'no reason given'}"
        if error.line and 0 < error.line <= len(keys):
            per_line[keys[error.line - 1]] = RecordFailure(
                "rejected", f"batch {batch.id} failed validation at line {error.line}: {text}")
        elif (error.code or "") not in TRANSIENT_VALIDATION:
            whole.append(text)
    if per_line or not whole:
        return per_line, None
    return per_line, RecordFailure("rejected", f"batch {batch.id} failed validation: {'; '.join(whole)}")
