"""An OpenAI-compatible chat-completions server for tests and benchmarks.

It speaks the real protocol over real sockets on 127.0.0.1 and can be told to be slow
and unreliable: a fixed latency, and shares (``faults``) of chat requests answered with

* ``429``: a 429 with ``Retry-After``; ``500``: a 500 error;
* ``drop``: the connection closed without an answer;
* ``empty``: a completion whose answer is empty;
* ``html``: a 200 whose body is an HTML page (``text/html``), as proxies and gateways send;
* ``text``: a 200 whose body is plain text;
* ``truncated_json``: a 200 whose JSON completion is cut off half-way;
* ``error_body``: a 200 whose JSON body is ``{"error": {...}}``, not a completion;
* ``hang``: the request is accepted and never answered (until the client gives up).

It checks the bearer key (401) and the model (404), answers 400
``context_length_exceeded`` for any message containing ``[[context-overflow]]``, 422 with
a FastAPI-style ``{"detail": [...]}`` body for ``[[unprocessable]]``, and stops at
``finish_reason: length`` for ``[[truncate]]``. Like a real model it honours
``max_tokens``: an answer longer than ``max_tokens * 4`` characters is cut there and ends
with ``finish_reason: length``. With ``reject_response_format`` it answers any request
carrying a ``response_format`` with OpenAI's 400 for a model without structured outputs (as
older vLLM servers, Ollama and many proxies do), and ``stats["response_format"]`` counts the
chat requests by the response format they carried (``json_schema`` or ``none``).

With ``fault_match`` the faults hit only chat requests whose text holds that string (one step
of a pipeline, say); ``stats["seen"]`` lists every chat request's text, image count and tag.

It answers the captioning prompt (a system prompt naming a "caption generator") with a caption,
a request to "only output the question content" with one question (``What is shown in
rec-<n>?``) and that question with an answer naming the images it carried.

The judge's answers are the verdicts :func:`judge_answer` makes, unless ``judge_script``
maps the record's tag to an answer of its own; ``stats["judge_seeds"]`` lists the seeds of
each tag's judge requests. The blind check's requests (text only, the questions numbered) are
answered by :func:`blind_answer` unless ``blind_script`` maps the tag to an answer;
``stats["blind"]`` counts them per tag, ``stats["blind_images"]`` the images they carried and
``stats["blind_texts"]`` holds their texts.

Answers are deterministic: they describe the images the request carried (count and
decoded sizes), so tests can see every image arrived as its own content part. A record
is recognised by a ``rec-<n>`` tag in its prompt; ``stats`` counts chat requests,
model listings, statuses (of both) and answers per tag.

It answers the ``visual_mcq`` pipeline: its generation prompt with five MCQs (:func:`mcq_questions`)
and each rotation prompt with a letter (:func:`mcq_letter`: right with an image; without one, right
only for question 1).

It also plays a reformatting model: a request whose text holds a raw answer between
``<<<ANSWER`` and ``ANSWER>>>`` (the reformat pass's) is answered from ``reformats`` (raw
answer -> reply; a reply may be a dict, sent as JSON) or, for a raw answer not there, by
:func:`copy_answer`, a verbatim copier of labelled lines. ``stats["reformats"]`` counts these
requests per raw answer, ``stats["reformat_images"]`` the images they carried and
``stats["reformat_schemas"]`` those that asked for a JSON schema; they are not counted
as answers of a tag.

ScaleCap's requests are answered by :func:`scalecap_answers.scalecap_answer`.

In a test::

    with ChatServer(latency=0.01, faults={"429": 0.1}) as server:
        server.base_url  # "http://127.0.0.1:PORT/v1"

From a shell (benchmarks, the SLURM test)::

    python tests/chat_server.py --port 0 --latency 0.5 --ready-file url.txt
    python tests/chat_server.py --fault-html 0.2 --fault-hang 0.05   # shares of faults
    python tests/chat_server.py --fault-hang 1                      # chat requests hang (listings answer)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import random
import re
import threading
import time
from collections import Counter
from pathlib import Path

from aiohttp import web
from PIL import Image

from scalecap_answers import scalecap_answer

TEST_KEY = "test-key"
MODEL = "test-vlm"
TAG = re.compile(r"\brec-\d+\b")
OVERFLOW = "[[context-overflow]]"
UNPROCESSABLE = "[[unprocessable]]"
TRUNCATE = "[[truncate]]"
FAULTS = ("429", "500", "drop", "empty", "html", "text", "truncated_json", "error_body", "hang")
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>\n"
    "<center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center>\n</body></html>\n"
)
PLAIN_TEXT = "upstream connect error or disconnect/reset before headers. reset reason: overflow"


def _error(status: int, message: str, code: str, headers: dict | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _parts(messages: list[dict]) -> tuple[str, list[str]]:
    """All text of a request and its image URLs, one per content part."""
    texts, urls = [], []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or []:
            if part.get("type") == "text":
                texts.append(part["text"])
            elif part.get("type") == "image_url":
                urls.append(part["image_url"]["url"])
    return "\n".join(texts), urls


def _image_size(url: str) -> str:
    if not url.startswith("data:"):
        return "remote"
    data = base64.b64decode(url.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        return f"{image.width}x{image.height} {image.format}"


MCQ_ASKING = "multiple-choice questions and their answers"  # the visual_mcq pipeline's generation prompt
MCQ_ANSWERING = "Answer the question with only the correct letter."  # its rotation prompts
MCQ_OPTION = re.compile(r"^\s*- ([A-H])\) (.*)$", re.M)
MCQ_NUMBER = re.compile(r"\(question (\d+)\)")


def mcq_questions(text: str, schema: bool | dict) -> str:
    """Five MCQs about the record's tag in upstream's markdown (JSON when the schema asks for
    ``mcqs``): question k's right option is ``<tag> fact k``, at letter A, B, C, D, A."""
    tag = (TAG.search(text) or [None])[0] or "untagged"
    mcqs = []
    for k in range(1, 6):
        options = [f"{tag} guess {k}.{j}" for j in range(1, 4)]
        options.insert((k - 1) % 4, f"{tag} fact {k}")
        mcqs.append({"question": f"Which fact belongs to {tag} (question {k})?",
                     "options": dict(zip("ABCD", options)), "answer": "ABCD"[(k - 1) % 4]})
    if isinstance(schema, dict) and "mcqs" in schema.get("properties", {}):
        return json.dumps({"mcqs": mcqs})
    return "".join(
        f"#### {k}. **{mcq['question']}**\n" + "".join(f"   - {letter}) {text}\n" for letter, text in mcq["options"].items())
        + f"\n**Answer:** {mcq['answer']}) {mcq['options'][mcq['answer']]}\n------\n"
        for k, mcq in enumerate(mcqs, 1))


def mcq_letter(text: str, images: int) -> str:
    """The letter answering one rotation of an MCQ: the fact's with an image; without one, the
    fact's only for question 1 (it needs no image), else the first guess's."""
    options = MCQ_OPTION.findall(text)
    number = MCQ_NUMBER.search(text)
    knows = images or (number is not None and number.group(1) == "1")
    return next((letter for letter, option in options if (" fact " in option) == bool(knows)), "A")


CAPTION_MARK = "caption generator"
QUESTION_ONLY = "only output the question content"
SHOWN_QUESTION = "What is shown in "


def default_answer(text: str, sizes: list[str], seed: int | None, structured: bool | dict) -> str:
    """A deterministic answer in the shape the prompt asks for; with a JSON schema
    (``structured``: the schema, or True), JSON that follows it, as constrained decoding
    makes it (an article only when the schema has one, or the prompt asks for one)."""
    tag = (TAG.search(text) or [None])[0] or "untagged"
    described = ", ".join(sizes) if sizes else "no image"
    if MCQ_ASKING in text:
        return mcq_questions(text, structured)
    if MCQ_ANSWERING in text:
        return mcq_letter(text, len(sizes))
    if not structured and CAPTION_MARK in text:
        return f"A test picture of {tag} with {len(sizes)} image(s): {described}."
    if not structured and QUESTION_ONLY in text.lower():
        return f"{SHOWN_QUESTION}{tag}?"
    if not structured and SHOWN_QUESTION + tag in text:
        return f"{tag} shows {len(sizes)} image(s): {described}."
    if not structured and (scalecap := scalecap_answer(text, sizes)):
        return scalecap[1]
    facts = f"The subject of {tag} was recorded with {len(sizes)} image(s): {described}."
    qas = [
        {"question": f"How many images does {tag} have?", "answer": str(len(sizes))},
        {"question": f"Which seed produced {tag}?", "answer": str(seed)},
    ]
    if structured:
        body = {"qas": qas}
        properties = structured.get("properties", {}) if isinstance(structured, dict) else None
        if ("context" in properties) if properties is not None else "Wikipedia" in text:
            body = {"context": f"{facts} It was produced with seed {seed}.", **body}
        return json.dumps(body)
    if "Wikipedia" in text:
        pairs = "\n".join(
            f"{n}. **Question:** {qa['question']}\n   **Answer:** {qa['answer']}"
            for n, qa in enumerate(qas, 1)
        )
        return (
            f"**Wikipedia Article:**\n\n{facts} It was produced with seed {seed}.\n\n"
            f"**Question Answer Pairs:**\n\n{pairs}\n"
        )
    return "\n".join(f"Q: {qa['question']}\nA: {qa['answer']}" for qa in qas)


REFORMAT_SPAN = re.compile(r"<<<ANSWER\n(.*)\nANSWER>>>", re.S)
COPY_LABEL = re.compile(r"^\s*(?:\d+[.)]\s*)?(?:\*\*)?(Question|Answer|Q|A)\s*\d*\s*[:：]\s*(?:\*\*)?\s*", re.I)


def copy_answer(raw: str, want_article: bool) -> str:
    """A verbatim copier: lines starting with a ``Question:``/``Q:`` or ``Answer:``/``A:`` label
    (numbered or bold) make the pairs; with ``want_article``, the other lines before the first
    question that do not end with a colon make the article."""
    article, qas = [], []
    for line in raw.splitlines():
        label = COPY_LABEL.match(line)
        text = line[label.end():].replace("**", "").strip() if label else line.replace("**", "").strip()
        if label and label.group(1).lower().startswith("q"):
            qas.append({"question": text, "answer": ""})
        elif label and qas:
            qas[-1]["answer"] = text
        elif not qas and text and not text.endswith(":"):
            article.append(text)
    body = {"qas": [qa for qa in qas if qa["answer"]]}
    return json.dumps({"context": "\n\n".join(article), **body} if want_article else body, ensure_ascii=False)


JUDGE_MARK = '{"verdicts": ['
JUDGED_PAIR = re.compile(r"^(\d+)\. Question: (.*)$", re.M)


SCHEMA_REJECTION = "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."


BLIND_MARK = '{"answers": ['
BLIND_QUESTION = re.compile(r"^(\d+)\. (.*)$", re.M)


def blind_answer(text: str) -> str:
    """A blind guesser's answers to the numbered questions of a blind request: "one" to a
    question on how many images a record has (right for a record of one image, as a word),
    "42" to any other (wrong for the seed questions)."""
    questions = text.split("Questions:\n", 1)[-1]
    answers = [{"index": int(number), "answer": "one" if question.startswith("How many images") else "42"}
               for number, question in BLIND_QUESTION.findall(questions)]
    return json.dumps({"answers": answers})


def judge_answer(text: str) -> str:
    """A judge's verdicts for the numbered pairs of a judge request: every pair is
    accepted except questions about the seed, which no image can show."""
    verdicts = []
    for number, question in JUDGED_PAIR.findall(text):
        about_seed = "seed" in question.lower()
        verdicts.append({
            "index": int(number),
            "reason": "the seed cannot be seen in the image" if about_seed else "supported by the image",
            "answerable": not about_seed, "correct": not about_seed,
        })
    return json.dumps({"verdicts": verdicts})


class ChatServer:
    """The server, run on its own event loop in a background thread."""

    def __init__(
        self, latency: float = 0.0, faults: dict[str, float] | None = None, key: str = TEST_KEY,
        models: tuple[str, ...] = (MODEL,), script: dict[str, str] | None = None,
        retry_after: float = 0.05, port: int = 0, seed: int = 0, reformats: dict | None = None,
        reject_response_format: bool = False, judge_script: dict[str, str] | None = None,
        fault_match: str | None = None,
        blind_script: dict[str, str] | None = None,
    ):
        self.latency, self.key, self.models = latency, key, models
        unknown = set(faults or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self.faults = {**dict.fromkeys(FAULTS, 0.0), **(faults or {})}
        self.fault_match = fault_match
        self.script = script or {}
        self.judge_script = judge_script or {}
        self.blind_script = blind_script or {}
        self.reject_response_format = reject_response_format
        self.reformats = reformats or {}
        self.retry_after = retry_after
        self.port = port
        self.random = random.Random(seed)
        self.stats: dict = {
            "requests": 0, "listings": 0, "statuses": Counter(), "answered": Counter(), "in_flight": 0,
            "max_in_flight": 0, "image_sizes": [], "judged": Counter(), "judge_models": Counter(),
            "body_bytes": 0, "reformats": Counter(), "reformat_images": 0, "reformat_schemas": 0,
            "response_format": Counter(), "judge_seeds": {}, "seen": [], "blind": Counter(), "blind_images": 0,
            "blind_texts": [],
        }
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # the Batch API (/v1/files, /v1/batches): knobs, stored files and batches, counters
        self.batch = dict(BATCH_DEFAULTS)
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.batch_stats: dict = {"batches_created": 0, "files_uploaded": 0, "bytes_uploaded": 0,
                                  "lines_per_batch": [], "retrieves": 0, "cancelled": 0, "listings": 0,
                                  "file_listings": 0, "files_deleted": 0, "downloads": Counter()}
        self._file_numbers = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _count(self, status: str) -> None:
        self.stats["statuses"][status] += 1

    def _fault(self) -> str | None:
        roll = self.random.random()
        for name in FAULTS:  # in this order, so adding a fault keeps older sequences
            if roll < self.faults.get(name, 0.0):
                return name
            roll -= self.faults.get(name, 0.0)
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.stats["requests"] += 1
        self.stats["body_bytes"] += request.content_length or 0  # bytes uploaded (bench/preview_cost.py)
        self.stats["in_flight"] += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        try:
            return await self._chat(request)
        finally:
            self.stats["in_flight"] -= 1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            self._count("401")
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        body = await request.json()
        if body.get("model") not in self.models:
            self._count("404")
            return _error(404, f"The model `{body.get('model')}` does not exist.", "model_not_found")
        text, urls = _parts(body["messages"])
        response_format = (body.get("response_format") or {}).get("type") or "none"
        self.stats["response_format"][response_format] += 1
        if self.reject_response_format and "response_format" in body:
            self._count("400")
            return web.json_response({"error": {"message": SCHEMA_REJECTION, "type": "invalid_request_error",
                                                "param": "response_format", "code": None}}, status=400)
        if OVERFLOW in text:
            self._count("400")
            return _error(400, "This model's maximum context length is 4096 tokens.", "context_length_exceeded")
        if UNPROCESSABLE in text:
            self._count("422")
            detail = [{"loc": ["body", "messages", 0], "msg": "unsupported content part", "type": "value_error"}]
            return web.json_response({"detail": detail}, status=422)
        await asyncio.sleep(self.latency)
        self.stats["seen"].append({"text": text, "images": len(urls), "tag": (TAG.search(text) or [None])[0]})
        fault = self._fault() if self.fault_match is None or self.fault_match in text else None
        if fault == "429":
            self._count("429")
            return _error(429, "Rate limit reached.", "rate_limit_exceeded",
                          headers={"Retry-After": str(self.retry_after)})
        if fault == "500":
            self._count("500")
            return _error(500, "The server had an error.", "server_error")
        if fault == "drop":
            self._count("drop")
            request.transport.abort()
            return web.Response()
        if fault == "hang":
            self._count("hang")
            await asyncio.Event().wait()  # cancelled when the client gives up
        if fault == "html":
            self._count("html")
            return web.Response(text=HTML_PAGE, content_type="text/html")
        if fault == "text":
            self._count("text")
            return web.Response(text=PLAIN_TEXT, content_type="text/plain")
        if fault == "error_body":
            self._count("error_body")
            return web.json_response({"error": {"message": "The server had an error while processing "
                                                "your request.", "type": "server_error", "code": None}})
        sizes = [_image_size(url) for url in urls]
        self.stats["image_sizes"].extend(sizes)
        tag = (TAG.search(text) or [None])[0]
        structured = (body.get("response_format") or {}).get("type") == "json_schema"
        judging = JUDGE_MARK in text
        blinded = BLIND_MARK in text
        reformatting = REFORMAT_SPAN.search(text)
        if reformatting:
            content = self._reformat(reformatting.group(1), urls, body)
        elif blinded:
            content = self.blind_script.get(tag) or blind_answer(text)
            self.stats["blind"][tag] += 1
            self.stats["blind_images"] += len(urls)
            self.stats["blind_texts"].append(text)
        elif judging:
            content = self.judge_script.get(tag) or judge_answer(text)
            self.stats["judged"][tag] += 1
            self.stats["judge_seeds"].setdefault(tag, []).append(body.get("seed"))
            self.stats["judge_models"][body["model"]] += 1
        else:
            schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or structured
            content = self.script.get(tag) or default_answer(text, sizes, body.get("seed"), schema)
        finish = "stop"
        if fault == "empty":
            self._count("empty")
            content = ""
        elif fault == "truncated_json":
            self._count("truncated_json")
        else:
            self._count("200")
            if tag and not judging and not blinded and not reformatting:
                self.stats["answered"][tag] += 1
        if TRUNCATE in text:
            content, finish = content[: len(content) * 2 // 3], "length"
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens and len(content) > max_tokens * 4:
            content, finish = content[: max_tokens * 4], "length"
        completion = {
            "id": f"chatcmpl-{self.stats['requests']}", "object": "chat.completion",
            "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": len(text) // 4 + 85 * len(urls),
                      "completion_tokens": len(content) // 4,
                      "total_tokens": len(text) // 4 + 85 * len(urls) + len(content) // 4},
        }
        if fault == "truncated_json":
            cut = json.dumps(completion)
            return web.Response(text=cut[: len(cut) // 2], content_type="application/json")
        return web.json_response(completion)

    def _reformat(self, raw: str, urls: list[str], body: dict) -> str:
        """A reformatting model's reply to a request carrying the raw answer ``raw``."""
        self.stats["reformats"][raw] += 1
        self.stats["reformat_images"] += len(urls)
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        self.stats["reformat_schemas"] += schema is not None
        reply = self.reformats.get(raw)
        if reply is None:
            return copy_answer(raw, "context" in (schema or {}).get("properties", {}))
        return json.dumps(reply, ensure_ascii=False) if isinstance(reply, dict) else reply

    async def list_models(self, request: web.Request) -> web.Response:
        self.stats["listings"] += 1
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            self._count("401")
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        self._count("200")
        data = [{"id": model, "object": "model", "created": 0, "owned_by": "tests"} for model in self.models]
        return web.json_response({"object": "list", "data": data})

    async def stats_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats_snapshot())

    def stats_snapshot(self) -> dict:
        return {**self.stats, "statuses": dict(self.stats["statuses"]),
                "answered": dict(self.stats["answered"]), "reformats": dict(self.stats["reformats"]),
                "response_format": dict(self.stats["response_format"])}

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/stats", self.stats_view)
        app.router.add_post("/v1/files", self.upload_file)
        app.router.add_get("/v1/files", self.list_files)
        app.router.add_delete("/v1/files/{file_id}", self.delete_file)
        app.router.add_get("/v1/files/{file_id}/content", self.file_content)
        app.router.add_post("/v1/batches", self.create_batch)
        app.router.add_get("/v1/batches", self.list_batches)
        app.router.add_get("/v1/batches/{batch_id}", self.retrieve_batch)
        app.router.add_post("/v1/batches/{batch_id}/cancel", self.cancel_batch)
        return app

    async def _serve(self) -> web.AppRunner:
        runner = web.AppRunner(self._app(), access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return runner

    def _thread(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._runner = self._loop.run_until_complete(self._serve())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> ChatServer:
        self._worker = threading.Thread(target=self._thread, daemon=True)
        self._worker.start()
        if not self._started.wait(10):
            raise RuntimeError("the chat server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._worker.join(10)

    # --- the Batch API ------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.key}"

    def _unauthorized(self) -> web.Response:
        self._count("401")
        return _error(401, "Incorrect API key provided.", "invalid_api_key")

    def _store_file(self, data: bytes, filename: str, purpose: str) -> dict:
        self._file_numbers += 1
        file_id = f"file-{self._file_numbers}"
        self.files[file_id] = {"data": data, "meta": {
            "id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
            "filename": filename, "purpose": purpose, "status": "processed",
        }}
        return self.files[file_id]["meta"]

    async def upload_file(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or purpose != "batch":
            return _error(400, "A file with purpose 'batch' is expected.", "invalid_request")
        data = upload.file.read()
        self.batch_stats["files_uploaded"] += 1
        self.batch_stats["bytes_uploaded"] += len(data)
        return web.json_response(self._store_file(data, upload.filename, purpose))

    async def file_content(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            return _error(404, "No such file.", "not_found")
        self.batch_stats["downloads"][stored["meta"]["purpose"]] += 1
        if stored["meta"]["purpose"] == "batch_output" and self.batch_stats["downloads"]["batch_output"] <= \
                self.batch["download_errors"]:
            return _error(500, "The server had an error.", "server_error")
        return web.Response(body=stored["data"], content_type="application/octet-stream")

    async def list_files(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.batch_stats["file_listings"] += 1
        if self.batch["list_status"]:
            return _error(self.batch["list_status"], "Listing is not available (test knob).", "list_failed")
        purpose = request.query.get("purpose")
        files = [f["meta"] for f in reversed(self.files.values()) if purpose in (None, f["meta"]["purpose"])]
        return self._page(request, files, 10000)

    async def delete_file(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        file_id = request.match_info["file_id"]
        if self.files.pop(file_id, None) is None:
            return _error(404, "No such file.", "not_found")
        self.batch_stats["files_deleted"] += 1
        return web.json_response({"id": file_id, "object": "file", "deleted": True})

    @staticmethod
    def _page(request: web.Request, items: list[dict], most: int) -> web.Response:
        """One page of a newest-first listing, after the ``after`` id, at most ``limit`` long."""
        limit = min(int(request.query.get("limit", 20)), most)
        after = request.query.get("after")
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else 0
        page = items[start:start + limit]
        return web.json_response({"object": "list", "data": page, "has_more": start + limit < len(items),
                                  "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None})

    async def create_batch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        body = await request.json()
        stored = self.files.get(body.get("input_file_id"))
        if stored is None:
            return _error(404, "No such input file.", "not_found")
        if body.get("endpoint") != "/v1/chat/completions":
            return _error(400, "Only /v1/chat/completions is supported.", "invalid_request")
        lines = [json.loads(line) for line in stored["data"].decode().splitlines() if line.strip()]
        number = self.batch_stats["batches_created"]
        self.batch_stats["batches_created"] += 1
        self.batch_stats["lines_per_batch"].append(len(lines))
        batch_id = f"batch_{number + 1}"
        now = int(time.time())
        self.batches[batch_id] = {
            "number": number, "lines": lines, "authorization": request.headers.get("Authorization"),
            "retrieves": 0, "started": time.monotonic(), "step": 0,
            "object": {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window"),
                "status": "validating", "created_at": now, "expires_at": now + 86400,
                "metadata": body.get("metadata"), "output_file_id": None, "error_file_id": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0}, "errors": None,
            },
        }
        return web.json_response(self.batches[batch_id]["object"])

    async def list_batches(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.batch_stats["listings"] += 1
        if self.batch["list_status"]:
            return _error(self.batch["list_status"], "Listing is not available (test knob).", "list_failed")
        return self._page(request, [batch["object"] for batch in reversed(self.batches.values())], 100)

    async def retrieve_batch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, "No such batch.", "not_found")
        self.batch_stats["retrieves"] += 1
        if self.batch_stats["retrieves"] <= self.batch["retrieve_errors"]:
            return _error(500, "The server had an error.", "server_error")
        batch["retrieves"] += 1
        await self._advance(batch)
        return web.json_response(batch["object"])

    async def cancel_batch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, "No such batch.", "not_found")
        self.cancel(batch["object"]["id"])
        return web.json_response(batch["object"])

    def cancel(self, batch_id: str) -> None:
        """Cancel a batch as a user would: it ends ``cancelled`` with no further lines."""
        batch = self.batches[batch_id]["object"]
        if batch["status"] not in ("completed", "expired", "failed", "cancelled"):
            self.batch_stats["cancelled"] += 1
            batch.update(status="cancelled", cancelling_at=int(time.time()), cancelled_at=int(time.time()))

    async def _advance(self, batch: dict) -> None:
        obj, knobs = batch["object"], self.batch
        if obj["status"] not in BATCH_STEPS[:3]:
            return
        steps = batch["retrieves"] // knobs["retrieves_per_step"] if knobs["retrieves_per_step"] else 0
        if knobs["seconds_per_step"] is not None:
            steps = max(steps, int((time.monotonic() - batch["started"]) / knobs["seconds_per_step"]))
        target = min(steps, 3)
        if target > batch["step"] and batch["step"] == 0:
            errors = self._validation_errors(batch)
            if errors:
                obj.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": errors})
                return
        if target >= 2 and batch["step"] < 2:
            await self._run_lines(batch)
            if obj["status"] == "expired":
                return
        batch["step"] = max(batch["step"], target)
        obj["status"] = BATCH_STEPS[batch["step"]]
        stamp = {1: "in_progress_at", 2: "finalizing_at", 3: "completed_at"}
        for step in range(1, batch["step"] + 1):
            obj.setdefault(stamp[step], int(time.time()))

    def _validation_errors(self, batch: dict) -> list[dict]:
        """Why a batch fails validation: a line carrying INVALID_LINE (one error per such
        line), or the ``fail_batches`` knob (one error without a line, code ``fail_code``)."""
        errors = [{"code": "invalid_request", "line": n,
                   "message": f"Line {n}: the request body is invalid (test marker)."}
                  for n, line in enumerate(batch["lines"], 1) if INVALID_LINE in json.dumps(line["body"])]
        if not errors and batch["number"] < self.batch["fail_batches"]:
            errors = [{"code": self.batch["fail_code"], "line": None,
                       "message": "The batch failed validation (test knob)."}]
        return errors

    async def _answer_line(self, batch: dict, line: dict) -> tuple[int | None, dict | None]:
        """One line through the chat route's own code: its status and JSON body (None, None:
        the connection was dropped)."""
        fake = _LineRequest(batch["authorization"], line["body"])
        response = await self._chat(fake)
        if fake.transport.aborted:
            return None, None
        return response.status, json.loads(response.body)

    async def _run_lines(self, batch: dict) -> None:
        obj, knobs = batch["object"], self.batch
        faulty = knobs["faulty_batches"] is None or batch["number"] < knobs["faulty_batches"]
        lines = batch["lines"]
        expire = knobs["expire_after"] if faulty and knobs["expire_after"] is not None else None
        if expire is not None:
            lines = lines[:expire]
        answered = await asyncio.gather(*(self._answer_line(batch, line) for line in lines))
        output, errors = [], []
        for n, (line, (status, body)) in enumerate(zip(lines, answered)):
            roll = self.random.random() if faulty else 1.0
            request_id = f"req_{obj['id']}_{n}"
            entry = {"id": f"batch_req_{obj['id']}_{n}", "custom_id": line["custom_id"]}
            if status is None or roll < knobs["error_share"]:
                errors.append({**entry, "response": None,
                               "error": {"code": "server_error", "message": "The line could not be processed."}})
                continue
            if roll < knobs["error_share"] + knobs["fail_share"]:
                status = 500
                body = {"error": {"message": "The server had an error.", "type": "server_error",
                                  "code": "server_error"}}
            record = {**entry, "response": {"status_code": status, "request_id": request_id, "body": body},
                      "error": None}
            (output if status == 200 else errors).append(record)
        counts = obj["request_counts"]
        counts.update(completed=len(output), failed=len(errors))
        if output:
            texts = [json.dumps(r) for r in output]
            for n in range(min(knobs["torn_lines"] if faulty else 0, len(texts))):
                texts[n] = texts[n][: len(texts[n]) // 2]  # a torn download
            obj["output_file_id"] = self._store_file(
                "".join(text + "\n" for text in texts).encode(), f"{obj['id']}_output.jsonl",
                "batch_output")["id"]
        if errors:
            obj["error_file_id"] = self._store_file(
                "".join(json.dumps(r) + "\n" for r in errors).encode(), f"{obj['id']}_error.jsonl",
                "batch_output")["id"]
        if expire is not None and expire < len(batch["lines"]):
            obj.update(status="expired", expired_at=int(time.time()))


# The Batch API's knobs (``server.batch``): a batch moves validating -> in_progress ->
# finalizing -> completed, one step per ``retrieves_per_step`` retrieves or per
# ``seconds_per_step`` seconds, whichever comes first (None: never by that clock); its
# lines are answered when it reaches finalizing, each by the chat route's own code. The
# first ``faulty_batches`` batches (None: all) get line faults: a share ``fail_share``
# answered with status 500, a share ``error_share`` only in the error file, and after
# ``expire_after`` lines the batch expires with a partial output, and the first
# ``torn_lines`` lines of its output file are cut in half. ``fail_batches`` batches fail
# validation outright (error code ``fail_code``, no line); a batch with a line carrying
# INVALID_LINE fails validation naming that line. The first ``retrieve_errors`` retrieves
# answer 500, and so do the first ``download_errors`` downloads of result files;
# ``list_status`` (an HTTP status) makes every listing of batches and files fail.
BATCH_DEFAULTS = {
    "retrieves_per_step": 1, "seconds_per_step": None, "faulty_batches": None,
    "fail_share": 0.0, "error_share": 0.0, "expire_after": None, "fail_batches": 0,
    "fail_code": "invalid_request", "retrieve_errors": 0, "torn_lines": 0, "list_status": None,
    "download_errors": 0,
}
INVALID_LINE = "[[invalid-batch-line]]"
BATCH_STEPS = ("validating", "in_progress", "finalizing", "completed")


class _LineRequest:
    """What the chat route reads of a request, for one batch line."""

    class _Transport:
        def __init__(self):
            self.aborted = False

        def abort(self):
            self.aborted = True

    def __init__(self, authorization: str | None, body: dict):
        self.headers = {"Authorization": authorization} if authorization else {}
        self._body = body
        self.transport = self._Transport()

    async def json(self):
        return self._body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1].split("In a test::")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--key", default=TEST_KEY)
    parser.add_argument("--ready-file", type=Path, help="write the base URL here when serving")
    parser.add_argument("--reject-response-format", action="store_true",
                        help="answer requests carrying a response_format with a 400, as servers without structured outputs do")
    for fault in FAULTS:
        parser.add_argument(f"--fault-{fault.replace('_', '-')}", type=float, default=0.0,
                            help=f"share of chat requests answered with the {fault} fault (see above)")
    args = parser.parse_args()
    faults = {name: getattr(args, f"fault_{name}") for name in FAULTS}
    with ChatServer(args.latency, faults, key=args.key, port=args.port,
                    reject_response_format=args.reject_response_format) as server:
        if args.ready_file:
            args.ready_file.write_text(server.base_url + "\n")
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
