"""The Batch backend's side of the wire: request lines split into input files within the
provider's limits, and the control-plane calls (upload, create, find a batch by its input
file, poll, download a result file) with their errors made fatal or waited out."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import openai

from .base import FatalBackendError, GenerationTask, Outcome
from .batch_lines import ENDPOINT
from .openai_protocol import classify_error, public_url

# an input file may be 190 MB: its upload gets at least this long, whatever api.timeout_s says
UPLOAD_TIMEOUT_S = 900.0
# recovering a batch whose id was never recorded: how many listed batches to look through
RECOVERY_LISTING = 1000


def log(message: str) -> None:
    print(f"batch: {message}", file=sys.stderr, flush=True)


def input_files(
    lines: Iterator[tuple[GenerationTask, bytes]], max_requests: int, max_file_mb: float, directory: Path,
    on_failure: Callable[[Outcome], None],
) -> Iterator[tuple[IO[bytes], list[str], int]]:
    """The lines split into batch input files of at most ``max_requests`` lines and
    ``max_file_mb``: each a temporary file in ``directory``, yielded rewound with its task
    ids and size, and gone once the next is asked for. A line larger than a file may be
    fails its record (through ``on_failure``)."""
    limit_bytes = int(max_file_mb * 1024 * 1024)
    lines = _sendable(lines, limit_bytes, max_file_mb, on_failure)
    following = next(lines, None)
    directory.mkdir(parents=True, exist_ok=True)
    while following is not None:
        with tempfile.TemporaryFile(dir=directory) as handle:
            chunk: list[str] = []
            size = 0
            while following is not None:
                task, data = following
                if chunk and (len(chunk) >= max_requests or size + len(data) > limit_bytes):
                    break
                handle.write(data)
                chunk.append(task.id)
                size += len(data)
                following = next(lines, None)
            handle.flush()
            handle.seek(0)
            yield handle, chunk, size


def _sendable(lines: Iterator[tuple[GenerationTask, bytes]], limit_bytes: int, max_file_mb: float,
              on_failure: Callable[[Outcome], None]) -> Iterator[tuple[GenerationTask, bytes]]:
    """The lines that fit in a batch file; a larger one fails its record."""
    for task, data in lines:
        if len(data) > limit_bytes:
            on_failure(Outcome(
                task.id, error_kind="rejected",
                error=f"the request is {len(data) / 2**20:.1f} MB, over the batch file limit "
                      f"of {max_file_mb} MB (batch.max_file_mb)",
            ))
        else:
            yield task, data


class BatchClient:
    """The control-plane calls of one run, for the batches of the state file ``state_path``."""

    def __init__(self, client: openai.OpenAI, key_env: str, timeout_s: float, completion_window: str,
                 state_path: Path):
        self.client, self.key_env, self.timeout_s = client, key_env, timeout_s
        self.completion_window, self.state_path = completion_window, state_path
        self.where = public_url(str(client.base_url))

    def call(self, action: Callable):
        """A control-plane call; client errors become fatal errors or propagate."""
        try:
            return action()
        except openai.APIError as raw:
            error = classify_error(raw, self.key_env)
            if isinstance(error, FatalBackendError):
                raise error from None
            raise

    def upload(self, handle: IO[bytes]) -> str:
        """Upload an input file; returns its file id."""
        name = f"{self.state_path.stem}-{int(time.time())}.jsonl"
        uploaded = self.call(
            lambda: self.client.with_options(timeout=max(self.timeout_s, UPLOAD_TIMEOUT_S)).files.create(
                file=(name, handle, "application/jsonl"), purpose="batch")
        )
        return uploaded.id

    def create(self, file_id: str) -> str:
        """Create the batch of an uploaded input file; returns its id (client errors propagate)."""
        batch = self.client.batches.create(
            input_file_id=file_id, endpoint=ENDPOINT, completion_window=self.completion_window,
            metadata={"vqaflow_state": self.state_path.name},
        )
        return batch.id

    def find(self, file_id: str) -> str | None:
        """The id of a batch created from this input file, among the latest listed."""
        listing = self.call(lambda: self.client.batches.list(limit=100))
        for seen, batch in enumerate(listing, 1):
            if batch.input_file_id == file_id:
                return batch.id
            if seen >= RECOVERY_LISTING:
                break
        return None

    def retrieve(self, batch_id: str):
        """The batch, or None while polling fails in a way that passes; a refused key is
        fatal, an unknown batch raises :class:`openai.NotFoundError`."""
        try:
            return self.client.batches.retrieve(batch_id)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as raw:
            raise classify_error(raw, self.key_env) from None
        except (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError) as err:
            # a batch runs for hours: an outage while it does is waited out, not fatal
            log(f"polling batch {batch_id} failed ({err}); polling again")
            return None

    def file_lines(self, file_id: str | None) -> Iterator[dict]:
        """The JSON lines of a result file (none without a file)."""
        if not file_id:
            return
        data = self.call(lambda: self.client.files.content(file_id)).content
        for raw in data.splitlines():
            if raw.strip():
                yield json.loads(raw)
