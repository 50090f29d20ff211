"""Verification by a judge model (one request per record, a verdict per pair) and the blind
check (:mod:`.blind`, one text-only request per record); each may run without the other.

The judge gets the record's image(s), the article (pipelines with one) and all of its
pairs, numbered, and answers per pair whether it is answerable and correct. Requests go
through the same backends and the same per-shard journal as generation (keyed by their
own fingerprint), so a killed verify job resumes and nothing is paid twice.

A record is verified only when every pair got a usable verdict. A record whose judge
answer leaves a pair without one (not JSON, cut off, indices 0 or 99, pairs missing), like
a record whose judge request failed, keeps its pairs with ``verdict: null``, gets
``verify.status: failed`` with the reason and is listed in ``verify_failed.jsonl``; an
unusable answer is a transient failure: the next run of the same command asks the judge
again for exactly those records, as a new request (the attempt number is in its seed key
and fingerprint), never the generator. Every judge answer a record's verification took is
counted in ``verify.tokens``. The blind check's requests go through the same journal after
the judge's, on the judge's endpoint and model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from .. import images
from ..backends.base import Backend, GenerationTask
from ..digests import value_digest
from ..jsonl import encode, read_jsonl
from ..logs import tell
from ..prompts import Prompt, PromptSettings, record_images
from ..quality import judge, parse
from ..requests import Request, ShardRequests, fingerprint, task_seed
from .blind import BlindItem, apply_blind, ask_blind, blind_item

UNUSABLE = "unusable_verdicts"  # the failure kind of a judge answer without a usable verdict for some pair


def judge_task(record_id: str, source: dict, qas: list[dict], context: str | None,
               settings: PromptSettings, prompt: str) -> tuple[GenerationTask, list[str]]:
    """The judge request for one record, and its image digests (raises on a bad image)."""
    refs = tuple(images.resolve(ref, settings.image_root) for ref in record_images(source, settings.columns))
    pairs = [{"question": qa["question"], "answer": qa["answer"]} for qa in qas]
    text = judge.judge_text(prompt, pairs, context)
    task = GenerationTask(record_id, Prompt(judge.JUDGE_SYSTEM_PROMPT, (("user", text),), refs),
                          task_seed(settings.seed, record_id))
    return task, [images.digest(ref) for ref in refs]


@dataclass(frozen=True)
class _Judging:
    """One record to judge: its first attempt's task, image digests and number of pairs."""

    task: GenerationTask
    digests: list[str]
    pairs: int


def attempt_request(item: _Judging, attempt: int, identity: dict, seed: int | None, max_pixels: int) -> Request:
    """The judge request of attempt ``attempt`` (from 1): the first is the record's plain
    request; a later one has the attempt number in its seed key and in its fingerprint (so
    it is a new request even without a seed)."""
    if attempt == 1:
        return Request(item.task, fingerprint(identity, item.task, item.digests, max_pixels))
    task = replace(item.task, seed=task_seed(seed, f"{item.task.id}#judge-{attempt}"))
    return Request(task, value_digest([fingerprint(identity, task, item.digests, max_pixels), "judge-attempt", attempt]))


def read_answer(entry: dict, pairs: int) -> tuple[list[dict | None], list[str]]:
    """The verdicts of a judge answer (None for a pair without a usable one) and issue codes."""
    return judge.read_verdicts(parse.read_json(entry["answer"]), pairs)


def _judge_requests(items: dict[str, _Judging], requests: ShardRequests, settings: PromptSettings,
                    spent: dict[tuple[str, str], list[dict]], backend: Backend) -> dict[str, Request]:
    """Each record's judge request through ``backend``: the first attempt whose answer the
    journal does not hold as unusable; the unusable answers before it go to ``spent``, by
    record id and the request's fingerprint."""
    identity = backend.identity()
    chosen: dict[str, Request] = {}
    for rid, item in items.items():
        earlier: list[dict] = []
        while True:
            request = attempt_request(item, len(earlier) + 1, identity, settings.seed, settings.max_pixels)
            entry = requests.stored(rid, request.fp)
            if entry is None or "answer" not in entry or None not in read_answer(entry, item.pairs)[0]:
                break
            earlier.append(entry)
        chosen[rid] = request
        spent[rid, request.fp] = earlier
    return chosen


@dataclass
class _Found:
    """What the shard's requests found: the judge's answers, failures and earlier unusable
    answers (``judged`` false: no judge), and the blind check's items and results (None: none)."""

    judged: bool
    answers: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, dict] = field(default_factory=dict)
    spent: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    blind: dict[str, BlindItem] | None = None
    blind_results: dict[str, dict] = field(default_factory=dict)


def verify_shard(
    refined_path: str | Path, shard_path: str | Path, output_path: str | Path, failed_path: str | Path,
    journal_path: str | Path, settings: PromptSettings, backend: Backend | None, prompt: str, model: str,
    retry_rejected: bool = False, auto: bool = False, blind: Backend | None = None,
) -> dict:
    """Judge every record of a refined shard (``backend``: the judge's; None: no judge) and
    check it blind (``blind``: the blind check's backend, :mod:`.blind`; None: no blind check);
    writes the records with their verdicts and blind answers, and the records whose checks
    failed. ``auto``: ``structured_output: auto`` (each check's schema, free text where the
    endpoint rejects it). Returns counts for the log."""
    lines = list(read_jsonl(shard_path))
    sources = {line["id"]: line["record"] for line in lines}
    requests = ShardRequests(journal_path, {line["id"]: line["index"] for line in lines}, retry_rejected)
    pipeline, columns, shard = settings.pipeline, settings.columns, Path(shard_path).stem
    records = list(read_jsonl(refined_path))
    found = _Found(backend is not None, blind={} if blind is not None else None)
    items: dict[str, _Judging] = {}
    for record in records:
        record_id = str(record[columns.id])
        qas = pipeline.qas(record, columns)
        if not qas:
            continue
        context = pipeline.context(record, columns)
        if found.blind is not None and (item := blind_item(record_id, qas, context, settings)) is not None:
            found.blind[record_id] = item
        if backend is None:
            continue
        try:
            task, digests = judge_task(record_id, sources[record_id], qas, context, settings, prompt)
        except Exception as err:  # one record's bad image must not stop the shard
            kind = "image" if isinstance(err, images.ImageError) else "internal"
            found.failed[record_id] = requests.failure(record_id, f"{type(err).__name__}: {err}", kind)
            continue
        items[record_id] = _Judging(task, digests, len(qas))
    if backend is not None:
        rebuild = partial(_judge_requests, items, requests, settings, found.spent)
        asking = rebuild(backend)
        found.answers, asked_failures = requests.run(
            backend, asking, "verify",
            lambda plan: (f"{shard}: {len(asking)} records to verify, {len(plan.answers)} stored, "
                          f"{len(plan.pending)} to ask"),
            rebuild if auto else None)
        found.failed.update(asked_failures)
    if blind is not None and found.blind:
        answers, failures = ask_blind(found.blind, requests, blind, settings.max_pixels, auto, shard)
        found.blind_results = {**answers, **failures}
    return _write(records, found, requests, settings, model, output_path, failed_path, shard)


def _write(records: list[dict], found: _Found, requests: ShardRequests, settings: PromptSettings, model: str,
           output_path: str | Path, failed_path: str | Path, shard: str) -> dict:
    """The verified records and verify_failed entries, in shard order; counts for the log."""
    pipeline, columns = settings.pipeline, settings.columns
    counts = {"records": len(records), "verified": 0, "failed": 0, "transient": 0}
    if found.blind is not None:
        counts.update(blind_right=0, blind_unread=0)
    failures: list[dict] = []
    with Path(output_path).open("w", encoding="utf-8") as out:
        for record in records:
            record_id = str(record[columns.id])
            qas = pipeline.qas(record, columns)
            failed: list[dict] = []
            if found.judged:
                record["verify"], failure = _judged(record_id, qas, found, model, requests)
                failed += [failure] if failure is not None else []
                counts["verified"] += failure is None and record["verify"]["status"] == "ok"
            if found.blind is not None:
                result = found.blind_results.get(record_id)
                record["blind"] = summary = apply_blind(found.blind.get(record_id), qas, result, model)
                failed += [{**result, "check": "blind"}] if result is not None and summary["status"] == "failed" else []
                counts["blind_right"] += summary.get("right", 0)
                counts["blind_unread"] += summary.get("unread", 0)
            failures += failed
            counts["transient"] += sum(failure["transient"] for failure in failed)
            out.write(encode(record) + "\n")
    counts["failed"] = len(failures)
    with Path(failed_path).open("w", encoding="utf-8") as bad:
        for failure in failures:
            bad.write(encode(failure) + "\n")
    tell(f"{shard}: verified {json.dumps(counts)}")
    return counts


def _judged(record_id: str, qas: list[dict], found: _Found, model: str,
            requests: ShardRequests) -> tuple[dict, dict | None]:
    """The record's ``verify`` summary (its verdicts put on its pairs) and its verify_failed
    entry, if any."""
    failure = found.failed.get(record_id)
    if record_id in found.answers:
        entry = found.answers[record_id]
        return _apply(entry, found.spent.get((record_id, entry["fp"]), []), qas, model, requests, record_id)
    if failure is not None:
        _unjudged(qas)
        return {"model": model, "status": "failed", "error": failure["error"], "kind": failure["kind"],
                "transient": failure["transient"]}, failure
    return {"model": model, "status": "skipped"}, None  # no pairs to judge


def _unjudged(qas: list[dict]) -> None:
    for qa in qas:
        qa["verdict"] = None


def _tokens(entries: list[dict]) -> dict:
    return {"prompt": sum(e["generation"].get("prompt_tokens") or 0 for e in entries),
            "completion": sum(e["generation"].get("completion_tokens") or 0 for e in entries)}


def _apply(entry: dict, earlier: list[dict], qas: list[dict], model: str, requests: ShardRequests,
           record_id: str) -> tuple[dict, dict | None]:
    """Put the judge's verdicts on the pairs: the record's ``verify`` summary, and its
    verify_failed entry when some pair got no usable verdict (then no pair keeps one)."""
    verdicts, issues = read_answer(entry, len(qas))
    generation = entry["generation"]
    summary = {
        "model": generation.get("model") or model,
        "status": "ok",
        "issues": issues,
        "attempts": generation.get("attempts"),
        "latency_s": generation.get("latency_s"),
        "tokens": _tokens([*earlier, entry]),  # every judge answer this verification took
    }
    if earlier:
        summary["requests"] = len(earlier) + 1
    if generation.get("free_text_fallback"):
        summary["free_text_fallback"] = True
    missing = [n for n, verdict in enumerate(verdicts, 1) if verdict is None]
    if not missing:
        for qa, verdict in zip(qas, verdicts):
            qa["verdict"] = verdict
        return summary, None
    _unjudged(qas)
    cut = ", cut off at verify.max_tokens" if generation.get("finish_reason") == "length" else ""
    error = (f"no usable verdict for pair{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
             f"of {len(qas)} ({', '.join(issues)}{cut}); the next run of the same command asks the judge again")
    failure = {**requests.failure(record_id, error, UNUSABLE, generation.get("attempts")), "issues": issues}
    summary.update(status="failed", error=error, kind=UNUSABLE, transient=failure["transient"])
    return summary, failure
