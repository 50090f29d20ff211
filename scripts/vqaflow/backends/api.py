"""The OpenAI-compatible API backend: asynchronous requests with the official client.

At most ``max_concurrency`` requests are in flight; a model listing checks the key first. Images are prepared in a thread pool
ahead of the requests, so encoding never stalls the event loop. Every attempt that fails
for a reason retrying can fix (429, 5xx, timeouts, dropped connections, empty answers)
is retried with exponential backoff and full jitter, honouring ``Retry-After``. A bad
key or an unknown model stops the whole run at once; a request the server rejects
(400, 413, 422) fails only its record.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

import openai
from openai.types.chat import ChatCompletion

from .. import images
from ..prompts import chat_messages
from .base import FatalBackendError, GenerationTask, OnOutcome, Outcome, Sampling
from .ratelimit import RateLimiter

IMAGE_TOKEN_ESTIMATE = 800
PREPARE_THREADS = 4
# httpx's connection pool scans all its connections per request; smaller pools cost
# about a third less CPU per request at 64+ requests in flight (docs/benchmarks.md).
WORKERS_PER_CLIENT = 16
# Workers start this far apart, so responses do not all arrive in one burst that the
# event loop then handles serially while every other worker waits (docs/benchmarks.md).
RAMP_S = 0.002


@dataclass(frozen=True)
class ApiSettings:
    """The ``api:`` section of the config (the key itself is never part of it)."""

    model: str
    key_env: str = "OPENAI_API_KEY"
    base_url: str | None = None
    max_concurrency: int = 64
    timeout_s: float = 120.0
    max_retries: int = 8
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    max_empty_retries: int = 2
    connect_timeout_s: float = 10.0
    dead_after_s: float = 60.0
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


class _RecordFailure(Exception):
    """The record cannot be answered; the run goes on."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _Retryable(Exception):
    """The attempt failed in a way another attempt may fix."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


def api_key(key_env: str) -> str:
    """Read the API key from the environment; a clear error names the variable."""
    key = os.environ.get(key_env)
    if not key:
        raise FatalBackendError(
            f"no API key: set the environment variable {key_env} (the config's api.key_env)"
        )
    return key


def _retry_after(error: openai.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _status_message(error: openai.APIStatusError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    message = body.get("message") or body.get("error", {}).get("message") if body else None
    return f"HTTP {error.status_code}: {message or error.message}"


def classify(error: Exception, key_env: str = "OPENAI_API_KEY") -> Exception:
    """Map a client exception to fatal, retryable or record failure."""
    if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return FatalBackendError(
            f"the API refused the key ({_status_message(error)}); "
            f"check the key in {key_env} and api.base_url"
        )
    if isinstance(error, openai.NotFoundError):
        return FatalBackendError(
            f"unknown model or endpoint ({_status_message(error)}); check api.model and api.base_url"
        )
    if isinstance(error, openai.RateLimitError):
        return _Retryable("rate_limited", _status_message(error), _retry_after(error))
    if isinstance(error, openai.APITimeoutError):
        return _Retryable("timeout", "request timed out")
    if isinstance(error, openai.APIConnectionError):
        return _Retryable("connection", f"connection error: {error}")
    if isinstance(error, openai.APIStatusError):
        if error.status_code >= 500 or error.status_code in (408, 409):
            return _Retryable("server_error", _status_message(error), _retry_after(error))
        return _RecordFailure("rejected", _status_message(error))
    return error


def _estimate_tokens(task: GenerationTask, sampling: Sampling) -> int:
    text = sum(len(t) for _, t in task.prompt.turns) + len(task.prompt.system or "")
    return text // 4 + IMAGE_TOKEN_ESTIMATE * len(task.prompt.images) + sampling.max_tokens


class ApiBackend:
    """Generates answers through any OpenAI-compatible chat-completions endpoint."""

    def __init__(self, settings: ApiSettings, sampling: Sampling, max_pixels: int):
        self.settings = settings
        self.sampling = sampling
        self.max_pixels = max_pixels

    def repairer(self, max_tokens: int, json_schema: dict | None) -> ApiBackend:
        sampling = replace(self.sampling, max_tokens=max_tokens,
                           json_schema=json_schema or self.sampling.json_schema)
        return ApiBackend(self.settings, sampling, self.max_pixels)

    def identity(self) -> dict:
        return {
            "backend": "api",
            "base_url": self.settings.base_url,
            "model": self.settings.model,
            "sampling": asdict(self.sampling),
        }

    def run(self, tasks: list[GenerationTask], on_outcome: OnOutcome) -> None:
        key = api_key(self.settings.key_env)
        asyncio.run(self._run(tasks, on_outcome, key))

    async def _run(self, tasks: list[GenerationTask], on_outcome: OnOutcome, key: str) -> None:
        settings = self.settings
        tls = ssl.create_default_context()  # one for all clients: each costs ~30 ms to build
        clients = [
            openai.AsyncOpenAI(
                api_key=key, base_url=settings.base_url, max_retries=0, timeout=settings.timeout_s,
                http_client=openai.DefaultAsyncHttpxClient(verify=tls, timeout=settings.timeout_s),
            )
            for _ in range(-(-settings.max_concurrency // WORKERS_PER_CLIENT))
        ]
        limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute)
        ready: asyncio.Queue = asyncio.Queue(maxsize=2 * settings.max_concurrency)
        loop = asyncio.get_running_loop()
        first_done = asyncio.Event()
        if await self._model_listed(clients[0]):
            first_done.set()
        with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:

            async def prepare_all() -> None:
                pending: asyncio.Queue = asyncio.Queue()
                for task in tasks:
                    pending.put_nowait(task)

                async def preparer() -> None:
                    while not pending.empty():
                        task = pending.get_nowait()
                        try:
                            urls = [
                                await loop.run_in_executor(pool, images.data_url, ref, self.max_pixels)
                                for ref in task.prompt.images
                            ]
                            await ready.put((task, urls, None))
                        except images.ImageError as err:
                            await ready.put((task, None, str(err)))

                await asyncio.gather(*(preparer() for _ in range(PREPARE_THREADS)))
                for _ in range(settings.max_concurrency):
                    await ready.put(None)

            async def worker(index: int) -> None:
                if index:
                    await first_done.wait()
                    await asyncio.sleep(index * RAMP_S)
                while (item := await ready.get()) is not None:
                    task, urls, image_error = item
                    if image_error is not None:
                        on_outcome(Outcome(task.id, error=image_error, error_kind="image"))
                    else:
                        client = clients[index // WORKERS_PER_CLIENT]
                        on_outcome(await self._answer(client, limiter, task, urls))
                    first_done.set()

            workers = [asyncio.create_task(worker(i)) for i in range(settings.max_concurrency)]
            producer = asyncio.create_task(prepare_all())
            try:
                await asyncio.gather(producer, *workers)
            finally:
                for job in (producer, *workers):
                    job.cancel()
                await asyncio.gather(producer, *workers, return_exceptions=True)
                await asyncio.gather(*(client.close() for client in clients))

    async def _model_listed(self, client: openai.AsyncOpenAI) -> bool:
        """Check the key with a cheap model listing before any generation request.

        A refused key is fatal here. When the listing names the model, every worker
        starts at once; otherwise (no listing, model not listed) the first request goes
        alone, so a wrong model or endpoint costs one request, not ``max_concurrency``.
        """
        try:
            page = await client.with_options(timeout=min(10.0, self.settings.timeout_s)).models.list()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            raise classify(err, self.settings.key_env) from None
        except openai.APIError:
            return False
        return any(model.id == self.settings.model for model in page.data)

    async def _answer(
        self, client: openai.AsyncOpenAI, limiter: RateLimiter, task: GenerationTask, urls: list[str]
    ) -> Outcome:
        """One record: attempts with backoff until an answer, a record failure or a fatal error."""
        settings, sampling = self.settings, self.sampling
        request = {
            "model": settings.model,
            "messages": chat_messages(task.prompt, [{"type": "image_url", "image_url": {"url": u}} for u in urls]),
            "max_tokens": sampling.max_tokens,
        }
        for name in ("temperature", "top_p"):
            if getattr(sampling, name) is not None:
                request[name] = getattr(sampling, name)
        if sampling.json_schema is not None:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": sampling.json_schema, "strict": True},
            }
        if task.seed is not None:
            request["seed"] = task.seed
        tokens = _estimate_tokens(task, sampling)
        errors: list[str] = []
        for attempt in range(1, settings.max_retries + 2):
            await limiter.acquire(tokens)
            started = time.monotonic()
            try:
                # the client's own POST, with the body built above: create() would walk and
                # re-validate every message part again (~3.5 ms a request, docs/benchmarks.md)
                response = await client.post("/chat/completions", body=request, cast_to=ChatCompletion)
                return self._outcome(task, response, attempt, time.monotonic() - started)
            except Exception as raw:  # classified below; unknown errors propagate
                error = raw if isinstance(raw, _Retryable) else classify(raw, settings.key_env)
                if isinstance(error, FatalBackendError):
                    raise error from None
                if isinstance(error, _RecordFailure):
                    return Outcome(task.id, error=str(error), error_kind=error.kind,
                                   generation={"attempts": attempt})
                if not isinstance(error, _Retryable):
                    raise
            errors.append(f"{error.kind}: {error}")
            if attempt <= settings.max_retries:
                await asyncio.sleep(self._backoff(attempt, error.retry_after))
        return Outcome(
            task.id,
            error=f"gave up after {len(errors)} attempts; last: {errors[-1]}",
            error_kind="retries_exhausted",
            generation={"attempts": len(errors)},
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, at least the server's Retry-After."""
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_s * 2 ** (attempt - 1))
        delay = random.uniform(0, ceiling)
        return max(delay, retry_after) if retry_after is not None else delay

    def _outcome(self, task: GenerationTask, response, attempt: int, latency: float) -> Outcome:
        choice = response.choices[0] if response.choices else None
        content = choice.message.content if choice and choice.message else None
        if not content or not content.strip():
            raise _Retryable("empty_answer", "the server returned an empty answer")
        usage = response.usage
        return Outcome(
            task.id,
            answer=content,
            generation={
                "backend": "api",
                "model": response.model or self.settings.model,
                "finish_reason": choice.finish_reason,
                "prompt_tokens": usage.prompt_tokens if usage else None,
                "completion_tokens": usage.completion_tokens if usage else None,
                "latency_s": round(latency, 3),
                "attempts": attempt,
            },
        )
