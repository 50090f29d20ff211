"""The OpenAI-compatible API backend: asynchronous requests with the official client.

Before any generation request, a model listing checks that the endpoint answers at all
(a refused connection, an unknown host or no answer within ``connect_timeout_s`` stops
the run at once, naming the URL) and that the key is accepted. Then at most
``max_concurrency`` requests are in flight. Images are prepared in a thread pool ahead
of the requests, so encoding never stalls the event loop.

Every record is isolated: whatever goes wrong while preparing, sending or reading it
becomes its own failure (a kind and a reason) or a retry. Attempts that failed for a
reason retrying can fix (429, 5xx, timeouts, dropped connections, a 200 whose body is
not a completion) are retried with exponential backoff and full jitter, honouring
``Retry-After``. An empty answer is asked again at once with another seed, at most
``max_empty_retries`` times. A bad key or an unknown model stops the whole run; so does
an endpoint that fails every request at the connection level for ``dead_after_s``. A
request the server rejects (400, 413, 422) fails only its record.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

import openai

from .. import images
from .base import FatalBackendError, GenerationTask, OnOutcome, OnRetry, Outcome, Sampling
from .openai_protocol import (
    RecordFailure,
    Retryable,
    attempt_seed,
    classify_error,
    connection_reason,
    decode_body,
    public_url,
    read_completion,
    request_body,
)
from .ratelimit import RateLimiter
from .tokens import ImageTokens

PREPARE_THREADS = 4
# httpx's connection pool scans all its connections per request; smaller pools cost
# about a third less CPU per request at 64+ requests in flight (docs/benchmarks.md).
WORKERS_PER_CLIENT = 16
# Workers start this far apart, so responses do not all arrive in one burst that the
# event loop then handles serially while every other worker waits (docs/benchmarks.md).
RAMP_S = 0.002
WHERE_TO_LOOK = (
    "check OPENAI_BASE_URL or the config's api.base_url, "
    "and that the server is started (a local server: is it running on that port?)"
)


@dataclass(frozen=True)
class ApiSettings:
    """The ``api:`` section of the config (the key itself is never part of it).

    No defaults here: the config schema holds them (config/README.md explains each)."""

    model: str
    key_env: str
    base_url: str | None
    max_concurrency: int
    timeout_s: float
    connect_timeout_s: float
    max_retries: int
    max_empty_retries: int
    backoff_s: float
    backoff_max_s: float
    dead_after_s: float
    requests_per_minute: float | None
    tokens_per_minute: float | None


def api_key(key_env: str) -> str:
    """Read the API key from the environment; a clear error names the variable."""
    key = os.environ.get(key_env)
    if not key:
        raise FatalBackendError(
            f"no API key: set the environment variable {key_env} (the config's api.key_env)"
        )
    return key


class _Endpoint:
    """Whether the endpoint is still alive for this job: it is dead once every attempt
    has failed at the connection level (refused, reset, timed out) for ``dead_after_s``
    without a single HTTP answer in between."""

    def __init__(self, url: str, dead_after_s: float):
        self.url = url
        self.dead_after_s = dead_after_s
        self.last_answer = time.monotonic()
        self.failing_since: float | None = None

    def answered(self, now: float) -> None:
        self.last_answer = now
        self.failing_since = None

    def connection_failed(self, started: float, error: Retryable) -> None:
        """Raise :class:`FatalBackendError` when the endpoint has been unreachable too long."""
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = max(started, self.last_answer)
        if now - self.failing_since >= self.dead_after_s:
            cause = (
                "The server may be stuck, or slower than api.timeout_s for every request"
                if error.kind == "timeout" else "The server may have stopped or become unreachable"
            )
            raise FatalBackendError(
                f"{self.url} has failed every request at the connection level for "
                f"{now - self.failing_since:.0f} s (api.dead_after_s: {self.dead_after_s:g}); "
                f"last: {error}. {cause}; {WHERE_TO_LOOK}"
            )


def _no_retry_told(kind: str) -> None:
    pass


class ApiBackend:
    """Generates answers through any OpenAI-compatible chat-completions endpoint."""

    schema_check = "probe"

    def __init__(self, settings: ApiSettings, sampling: Sampling, max_pixels: int,
                 image_tokens: ImageTokens | None = None):
        self.settings = settings
        self.sampling = sampling
        self.max_pixels = max_pixels
        # prompt tokens per image for the tokens-per-minute limit: the preview's measured mean
        # (or a guess), then the running mean of this job's answers
        self.image_tokens = image_tokens or ImageTokens()

    def repairer(self, max_tokens: int, json_schema: dict | None) -> ApiBackend:
        other = copy.copy(self)  # shares the image-token meter
        other.sampling = replace(self.sampling, max_tokens=max_tokens,
                                 json_schema=json_schema or self.sampling.json_schema)
        return other

    def free_text(self) -> ApiBackend:
        return ApiBackend(self.settings, replace(self.sampling, json_schema=None), self.max_pixels, self.image_tokens)

    def identity(self) -> dict:
        return {
            "backend": "api",
            "base_url": self.settings.base_url,
            "model": self.settings.model,
            "sampling": asdict(self.sampling),
        }

    def run(self, tasks: list[GenerationTask], on_outcome: OnOutcome, on_retry: OnRetry | None = None) -> None:
        key = api_key(self.settings.key_env)
        asyncio.run(self._run(tasks, on_outcome, on_retry or _no_retry_told, key))

    async def _run(self, tasks: list[GenerationTask], on_outcome: OnOutcome, on_retry: OnRetry, key: str) -> None:
        settings = self.settings
        tls = ssl.create_default_context()  # one for all clients: each costs ~30 ms to build
        timeout = openai.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
        clients = [
            openai.AsyncOpenAI(
                api_key=key, base_url=settings.base_url, max_retries=0, timeout=timeout,
                http_client=openai.DefaultAsyncHttpxClient(verify=tls, timeout=timeout),
            )
            for _ in range(-(-settings.max_concurrency // WORKERS_PER_CLIENT))
        ]
        try:
            endpoint = _Endpoint(public_url(str(clients[0].base_url)), settings.dead_after_s)
            await self._run_checked(tasks, on_outcome, on_retry, clients, endpoint)
        finally:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)

    async def _run_checked(self, tasks, on_outcome: OnOutcome, on_retry: OnRetry, clients,
                           endpoint: _Endpoint) -> None:
        settings = self.settings
        limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute)
        ready: asyncio.Queue = asyncio.Queue(maxsize=2 * settings.max_concurrency)
        loop = asyncio.get_running_loop()
        first_done = asyncio.Event()
        if await self._check_endpoint(clients[0], endpoint.url):
            first_done.set()
        endpoint.answered(time.monotonic())
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
                            item = (task, urls, None)
                        except images.ImageError as err:
                            item = (task, None, ("image", str(err)))
                        except Exception as err:  # one record's bad luck, not the job's
                            item = (task, None, ("internal", f"preparing its images: {type(err).__name__}: {err}"))
                        await ready.put(item)

                await asyncio.gather(*(preparer() for _ in range(PREPARE_THREADS)))
                for _ in range(settings.max_concurrency):
                    await ready.put(None)

            async def worker(index: int) -> None:
                if index:
                    await first_done.wait()
                    await asyncio.sleep(index * RAMP_S)
                while (item := await ready.get()) is not None:
                    task, urls, failure = item
                    if failure is not None:
                        on_outcome(Outcome(task.id, error=failure[1], error_kind=failure[0]))
                    else:
                        client = clients[index // WORKERS_PER_CLIENT]
                        on_outcome(await self._answer(client, limiter, endpoint, task, urls, on_retry))
                    first_done.set()

            workers = [asyncio.create_task(worker(i)) for i in range(settings.max_concurrency)]
            producer = asyncio.create_task(prepare_all())
            try:
                await asyncio.gather(producer, *workers)
            finally:
                for job in (producer, *workers):
                    job.cancel()
                await asyncio.gather(producer, *workers, return_exceptions=True)

    async def _check_endpoint(self, client: openai.AsyncOpenAI, url: str) -> bool:
        """Check the endpoint and the key with a cheap model listing before any
        generation request; returns whether the listing names the model.

        No connection (refused, unknown host) or no answer within ``connect_timeout_s``
        and a refused key are fatal here. Any other answer (a server without a
        ``/models`` route, a listing not naming the model) lets the run go on, but then
        the first request goes alone, so a wrong model or endpoint costs one request,
        not ``max_concurrency``.
        """
        settings = self.settings
        try:
            raw = await client.get("/models", cast_to=bytes, options={"timeout": settings.connect_timeout_s})
        except openai.APITimeoutError:
            raise FatalBackendError(
                f"no answer from {url} within {settings.connect_timeout_s:g} s "
                f"(api.connect_timeout_s); {WHERE_TO_LOOK}"
            ) from None
        except openai.APIConnectionError as err:
            raise FatalBackendError(f"cannot connect to {url} ({connection_reason(err)}); {WHERE_TO_LOOK}") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            raise classify_error(err, settings.key_env, url) from None
        except openai.APIStatusError:
            return False  # it answers: no /models route, or a listing it does not offer
        try:
            listed = json.loads(raw).get("data") or []
            return any(isinstance(m, dict) and m.get("id") == settings.model for m in listed)
        except (ValueError, AttributeError, TypeError):
            return False

    async def _answer(
        self, client: openai.AsyncOpenAI, limiter: RateLimiter, endpoint: _Endpoint,
        task: GenerationTask, urls: list[str], on_retry: OnRetry,
    ) -> Outcome:
        """One record: attempts until an answer, a record failure or a fatal error; each
        attempt made again is told to ``on_retry`` with the kind of the failure before it."""
        settings = self.settings
        try:
            body = request_body(settings.model, task, urls, self.sampling, task.seed)
        except Exception as err:
            return Outcome(task.id, error=f"building its request: {type(err).__name__}: {err}",
                           error_kind="internal")
        errors: list[str] = []
        empty_seeds: list[int | None] = []
        seed = task.seed
        kind = ""  # of the last attempt's failure
        for attempt in range(1, settings.max_retries + 2):
            if attempt > 1:
                on_retry(kind)
            await limiter.acquire(self.image_tokens.estimate(task, self.sampling.max_tokens))
            started = time.monotonic()
            try:
                # the client's own POST, with the body built above: create() would walk and
                # re-validate every message part again (~3.5 ms a request, docs/benchmarks.md);
                # raw bytes, so a 200 that is not a completion is read (and retried) here
                raw = await client.post("/chat/completions", body=body, cast_to=bytes)
                now = time.monotonic()
                endpoint.answered(now)
                answer, generation = read_completion(decode_body(raw), settings.model)
                generation.update(seed=seed, latency_s=round(now - started, 3), attempts=attempt)
                self.image_tokens.observe(task, generation.get("prompt_tokens"))
                return Outcome(task.id, answer=answer, generation=generation)
            except Exception as raw_error:
                error = classify_error(raw_error, settings.key_env, endpoint.url)
            if isinstance(error, FatalBackendError):
                raise error from None
            if isinstance(error, RecordFailure):
                return Outcome(task.id, error=str(error), error_kind=error.kind,
                               generation={"attempts": attempt})
            errors.append(f"{error.kind}: {error}")
            kind = error.kind
            if error.connection_level:
                endpoint.connection_failed(started, error)
            else:
                endpoint.answered(time.monotonic())  # a 429, a 5xx, a bad body: it is there
            if error.kind == "empty_answer":
                empty_seeds.append(seed)
                if len(empty_seeds) > settings.max_empty_retries:
                    return Outcome(
                        task.id,
                        error=f"{error} {len(empty_seeds)} times (seeds {', '.join(map(str, empty_seeds))}); "
                              "a larger generation.max_tokens may help",
                        error_kind="empty_answer",
                        generation={"attempts": attempt, "seed": seed},
                    )
                seed = attempt_seed(task.seed, len(empty_seeds))
                if seed is not None:
                    body = {**body, "seed": seed}
                continue  # another seed is another request: no need to wait
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
