"""The Batch backend's side of the wire: request lines split into input files within the
provider's limits, and the control-plane calls (upload, create, list, poll, download,
delete) with their errors named after the call that failed."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import openai

from .base import FatalBackendError, GenerationTask, Outcome
from .batch_lines import ENDPOINT
from .batch_state import log
from .openai_protocol import TRANSPORT_ERRORS, classify_error, public_url, server_message

# an input file may be 190 MB: its upload gets at least this long, whatever api.timeout_s says
UPLOAD_TIMEOUT_S = 900.0
# the listing of batches is read back this far (a provider keeps batch files about 30 days)
LISTING_DAYS = 30
LISTING_MOST = 10_000
PAGE = 100
DOWNLOAD_CHUNK = 1 << 20


class DownloadFailed(Exception):
    """A result file could not be downloaded this time (the connection, a 5xx)."""


def input_files(
    lines: Iterator[tuple[GenerationTask, bytes]], max_requests: int, max_file_mb: float, directory: Path,
    on_failure: Callable[[Outcome], None],
) -> Iterator[tuple[IO[bytes], list[str], int, str]]:
    """The lines split into batch input files of at most ``max_requests`` lines and
    ``max_file_mb``: each a temporary file in ``directory``, yielded rewound with its task
    ids, size and ``sha256:`` digest, and gone once the next is asked for. A line larger
    than a file may be fails its record (through ``on_failure``)."""
    limit_bytes = int(max_file_mb * 1024 * 1024)
    lines = _sendable(lines, limit_bytes, max_file_mb, on_failure)
    following = next(lines, None)
    directory.mkdir(parents=True, exist_ok=True)
    while following is not None:
        with tempfile.TemporaryFile(dir=directory) as handle:
            chunk: list[str] = []
            size = 0
            digest = hashlib.sha256()
            while following is not None:
                task, data = following
                if chunk and (len(chunk) >= max_requests or size + len(data) > limit_bytes):
                    break
                handle.write(data)
                digest.update(data)
                chunk.append(task.id)
                size += len(data)
                following = next(lines, None)
            handle.flush()
            handle.seek(0)
            yield handle, chunk, size, f"sha256:{digest.hexdigest()}"


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


def read_lines(handle: IO[bytes]) -> Iterator[tuple[int, dict | None]]:
    """A result file's lines by number: each a JSON object, or None when it cannot be read."""
    handle.seek(0)
    for number, raw in enumerate(handle, 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            line = None
        yield number, line if isinstance(line, dict) else None


class BatchClient:
    """The control-plane calls of one run; temporary files go to ``scratch``."""

    def __init__(self, client: openai.OpenAI, key_env: str, timeout_s: float, completion_window: str,
                 scratch: Path):
        self.client, self.key_env, self.timeout_s = client, key_env, timeout_s
        self.completion_window, self.scratch = completion_window, scratch
        self.where = public_url(str(client.base_url))
        self.listing_complete = False

    def call(self, action: Callable, what: str):
        """A control-plane call named ``what``; a refused key is fatal as online, any other
        error stops the run naming the call that failed (not "unknown model")."""
        try:
            return action()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as raw:
            raise classify_error(raw, self.key_env) from None
        except openai.APIStatusError as raw:
            hint = "; does the endpoint offer the Batch API (api.base_url)?" if raw.status_code in (404, 405) else ""
            raise FatalBackendError(f"{what} at {self.where} failed (HTTP {raw.status_code}: "
                                    f"{server_message(raw)}){hint}") from None
        except openai.APIError as raw:
            raise FatalBackendError(f"{what} at {self.where} failed: {classify_error(raw, self.key_env)}") from None

    def upload(self, handle: IO[bytes], name: str) -> str:
        """Upload an input file; returns its file id."""
        uploaded = self.call(
            lambda: self.client.with_options(timeout=max(self.timeout_s, UPLOAD_TIMEOUT_S)).files.create(
                file=(name, handle, "application/jsonl"), purpose="batch"),
            "uploading a batch input file",
        )
        return uploaded.id

    def create(self, file_id: str, metadata: dict[str, str]) -> str:
        """Create the batch of an uploaded input file; returns its id (client errors propagate)."""
        batch = self.client.batches.create(
            input_file_id=file_id, endpoint=ENDPOINT, completion_window=self.completion_window, metadata=metadata,
        )
        return batch.id

    def batches(self) -> Iterator:
        """The provider's batches, newest first, back ``LISTING_DAYS`` days (at most
        ``LISTING_MOST``); ``listing_complete`` says whether the listing was read to its end."""
        self.listing_complete = False
        since = time.time() - LISTING_DAYS * 86400
        listing = self.call(lambda: self.client.batches.list(limit=PAGE), "listing batches")
        pages = listing.iter_pages()
        seen = 0
        while True:
            page = self.call(lambda: next(pages, None), "listing batches")
            if page is None:
                break
            for batch in page.data:
                seen += 1
                if (batch.created_at or since) < since:
                    self.listing_complete = True
                    return
                yield batch
            if seen >= LISTING_MOST:
                log(f"the listing of batches was read only to its {seen} newest")
                return
        self.listing_complete = True

    def files_named(self, prefix: str) -> list:
        """Uploaded input files (purpose ``batch``) whose name starts with ``prefix``."""
        listing = self.call(lambda: self.client.files.list(purpose="batch", limit=PAGE), "listing files")
        found = []
        pages = listing.iter_pages()
        for _ in range(LISTING_MOST // PAGE):
            page = self.call(lambda: next(pages, None), "listing files")
            if page is None:
                break
            found.extend(f for f in page.data if (f.filename or "").startswith(prefix))
        return found

    def delete_file(self, file_id: str) -> bool:
        """Delete an uploaded file; False (said) when that fails, True when it is gone."""
        try:
            self.client.files.delete(file_id)
        except openai.NotFoundError:
            return True
        except openai.APIError as err:
            log(f"deleting file {file_id} failed ({err}); it stays at the provider")
            return False
        return True

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

    def download(self, file_id: str) -> IO[bytes] | None:
        """A file's content in a temporary file (gone when closed), None when the provider
        has no such file; :class:`DownloadFailed` when it may be had later."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        handle = tempfile.TemporaryFile(dir=self.scratch)
        try:
            with self.client.files.with_streaming_response.content(file_id) as response:
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    handle.write(chunk)
        except openai.NotFoundError:
            handle.close()
            return None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as raw:
            handle.close()
            raise classify_error(raw, self.key_env) from None
        except (openai.APIError, OSError, *TRANSPORT_ERRORS) as err:
            handle.close()
            raise DownloadFailed(f"downloading file {file_id} from {self.where} failed: {err}") from None
        handle.seek(0)
        return handle
