"""What every backend speaking the OpenAI chat-completions protocol shares.

The online API backend and a Batch-API backend send the same request body and read the
same completion; this module builds the one and reads the other, and maps the official
client's exceptions and the HTTP status of an answer or a batch line (:func:`classify_status`,
the one place) to the three outcomes a caller acts on: :class:`FatalBackendError` (stop
the run), :class:`Retryable` (another attempt may fix it) and :class:`RecordFailure`
(this record cannot be answered; the run goes on).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import time
from urllib.parse import urlsplit, urlunsplit

import openai

from ..prompts import chat_messages
from .base import FatalBackendError, GenerationTask, Sampling

SNIPPET_CHARS = 160
# the kind of a request rejected for its response_format (structured_output: auto asks again in free text)
SCHEMA_REJECTED = "schema_rejected"
# how a rejection names the JSON schema: OpenAI's "Invalid parameter: 'response_format' ...", vLLM's and
# llama.cpp's "response_format ...", a FastAPI validation error on body.response_format.json_schema
_NAMES_SCHEMA = re.compile(r"response[_ ]?format|json[_ ]?schema|structured[_ ]outputs?\b", re.IGNORECASE)
# kinds of retryable errors that mean the endpoint was not reached or never answered
CONNECTION_KINDS = frozenset({"connection", "timeout"})

try:  # the client's transport library: httpx, or httpx2 in newer clients
    import httpx2 as _httpx2
except ImportError:  # pragma: no cover - depends on the installed client
    _httpx2 = None
try:
    import httpx as _httpx
except ImportError:  # pragma: no cover
    _httpx = None
_TRANSPORT_ERRORS = tuple(m.TransportError for m in (_httpx2, _httpx) if m is not None)
_TIMEOUT_ERRORS = tuple(m.TimeoutException for m in (_httpx2, _httpx) if m is not None)
TRANSPORT_ERRORS = _TRANSPORT_ERRORS  # a stream cut off mid-way raises these, not the client's errors


class RecordFailure(Exception):
    """The record cannot be answered; the run goes on."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Retryable(Exception):
    """The attempt failed in a way another attempt may fix."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after

    @property
    def connection_level(self) -> bool:
        """The endpoint was not reached, or it never answered."""
        return self.kind in CONNECTION_KINDS


def request_body(
    model: str, task: GenerationTask, image_urls: list[str], sampling: Sampling, seed: int | None
) -> dict:
    """The chat-completions request body for one record: its messages (each image its
    own content part), the sampling settings that are set, and ``seed`` when given."""
    body = {
        "model": model,
        "messages": chat_messages(task.prompt, [{"type": "image_url", "image_url": {"url": u}} for u in image_urls]),
        "max_tokens": sampling.max_tokens,
    }
    for name in ("temperature", "top_p"):
        if getattr(sampling, name) is not None:
            body[name] = getattr(sampling, name)
    if sampling.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": sampling.json_schema, "strict": True},
        }
    if seed is not None:
        body["seed"] = seed
    return body


def attempt_seed(seed: int | None, empty_answers: int) -> int | None:
    """The seed of an attempt: the task's own until an answer comes back empty, then
    one derived from it and the number of empty answers so far (deterministic, so a
    rerun asks the same questions)."""
    if seed is None or empty_answers == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:empty-{empty_answers}".encode()).digest()[:4], "big")


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """A short, one-line readable summary of a body: an HTML page's title and text
    without tags, whitespace collapsed, cut at ``limit`` characters."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    if title or re.search(r"<(html|body|!doctype)", text[:500], re.I):
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.I | re.S)
        text = re.sub(r"<[^>]*>", " ", text)
        if title:
            text = title.group(1)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def decode_body(raw: bytes | str) -> dict:
    """A 200 answer's body as a JSON object; a body that is not (an HTML page from a
    proxy, plain text, truncated JSON) raises :class:`Retryable` ``bad_response``."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        text = _as_text(raw)
        if not text.strip():
            what = "an empty body"
        elif re.search(r"<(html|body|!doctype|head)", text[:500], re.I):
            what = "an HTML page"
        elif text.lstrip().startswith(("{", "[")):
            what = "incomplete JSON"
        else:
            what = "text"
        raise Retryable("bad_response", f"HTTP 200 with {what}, not a completion: {snippet(text)!r}") from None
    if not isinstance(data, dict):
        raise Retryable("bad_response", f"HTTP 200 with JSON that is not an object: {snippet(_as_text(raw))!r}")
    return data


def _text(content) -> str | None:
    """Message content as text: a string, or the text of a list of content parts."""
    if isinstance(content, str) or content is None:
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return None


def read_completion(data: dict, default_model: str) -> tuple[str, dict]:
    """The answer text of a chat completion and its ``generation`` fields (backend,
    model, finish_reason, prompt_tokens, completion_tokens).

    Raises :class:`Retryable`: ``bad_response`` for an error body or a body without a
    readable choice, ``empty_answer`` when the answer is empty or only whitespace."""
    if not isinstance(data, dict):
        raise Retryable("bad_response", f"the completion is not a JSON object: {snippet(str(data))!r}")
    if "error" in data and not data.get("choices"):
        raise Retryable("bad_response", f"HTTP 200 with an error body: {error_text(data['error'])}")
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise Retryable("bad_response", f"HTTP 200 without a readable choice: {snippet(json.dumps(data))!r}")
    finish_reason = choice.get("finish_reason")
    content = _text(message.get("content"))
    if not content or not content.strip():
        detail = f"refusal: {snippet(message['refusal'])}" if message.get("refusal") else f"finish_reason {finish_reason}"
        raise Retryable("empty_answer", f"the server returned an empty answer ({detail})")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return content, {
        "backend": "api",
        "model": data.get("model") or default_model,
        "finish_reason": finish_reason,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
    }


def error_text(error) -> str:
    """The server's own message from an error body: OpenAI's ``{"message": ...}``,
    FastAPI's ``{"detail": ...}`` (a string or a list of validation errors), or text."""
    if isinstance(error, dict):
        if isinstance(error.get("message"), str) and error["message"]:
            return error["message"]
        if "error" in error:
            return error_text(error["error"])
        detail = error.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):
            return "; ".join(
                (f"{'.'.join(str(p) for p in item.get('loc', ()))}: {item.get('msg')}"
                 if isinstance(item, dict) else str(item))
                for item in detail
            )
        return snippet(json.dumps(error))
    if isinstance(error, str):
        return snippet(error)
    return snippet(str(error))


def public_url(url: str | None) -> str:
    """The endpoint as it may be shown: no user, password, query or fragment."""
    if not url:
        return "(no URL)"
    parts = urlsplit(str(url))
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _retry_after(error: openai.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def server_message(error: openai.APIStatusError) -> str:
    """The server's message of an error answer: its body's, else the client's."""
    body = error.body
    message = error_text(body) if body not in (None, "", {}) else None
    return message or error.message


def connection_reason(error: BaseException) -> str:
    """The innermost readable reason of a connection error (refused, DNS, reset)."""
    seen, reason = error, str(error)
    for _ in range(10):
        seen = seen.__cause__ or seen.__context__
        if seen is None:
            break
        if str(seen):
            reason = str(seen)
    return reason


def classify_status(
    status: int, message: str, key_env: str = "OPENAI_API_KEY", where: str = "the endpoint",
    retry_after: float | None = None,
) -> Exception:
    """What an HTTP status other than 200 means, for an online answer and a batch line alike:
    :class:`FatalBackendError` for a refused key (401, 403) or an unknown model or endpoint
    (404), :class:`Retryable` for 429 (``rate_limited``), 408, 409 and 5xx
    (``server_error``), else :class:`RecordFailure`: ``schema_rejected`` for a 400 or 422 naming
    the response format or JSON schema (an endpoint without structured outputs), ``rejected``
    otherwise. ``message`` is the server's own; ``where`` names the endpoint."""
    text = f"HTTP {status}: {message}"
    if status in (401, 403):
        return FatalBackendError(f"{where} refused the key ({text}); check the key in {key_env} and api.base_url")
    if status == 404:
        return FatalBackendError(
            f"unknown model or endpoint at {where} ({text}); "
            "check api.model and api.base_url (or OPENAI_BASE_URL)"
        )
    if status == 429:
        return Retryable("rate_limited", text, retry_after)
    if status >= 500 or status in (408, 409):
        return Retryable("server_error", text, retry_after)
    if status in (400, 422) and _NAMES_SCHEMA.search(message):
        return RecordFailure(SCHEMA_REJECTED, text)
    return RecordFailure("rejected", text)


def classify_error(error: Exception, key_env: str = "OPENAI_API_KEY", url: str | None = None) -> Exception:
    """Map an exception of one attempt to :class:`FatalBackendError`, :class:`Retryable`
    or :class:`RecordFailure` (``internal`` for anything unexpected)."""
    where = public_url(url) if url else "the endpoint"
    if isinstance(error, (Retryable, RecordFailure, FatalBackendError)):
        return error
    if isinstance(error, openai.APIStatusError):
        return classify_status(error.status_code, server_message(error), key_env, where, _retry_after(error))
    if isinstance(error, openai.APITimeoutError) or isinstance(error, _TIMEOUT_ERRORS):
        return Retryable("timeout", f"no answer from {where} in time")
    if isinstance(error, openai.APIConnectionError) or isinstance(error, _TRANSPORT_ERRORS):
        return Retryable("connection", f"connection error with {where}: {connection_reason(error)}")
    return RecordFailure("internal", f"unexpected {type(error).__name__}: {error}")
