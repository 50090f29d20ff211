"""Verification by a judge model: one request per record, a verdict per pair.

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
counted in ``verify.tokens``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
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


def verify_shard(
    refined_path: str | Path, shard_path: str | Path, output_path: str | Path, failed_path: str | Path,
    journal_path: str | Path, settings: PromptSettings, backend: Backend, prompt: str, model: str,
    retry_rejected: bool = False, auto: bool = False,
) -> dict:
    """Judge every record of a refined shard; writes the records with their verdicts and
    the records whose verification failed. ``auto``: ``structured_output: auto`` (the
    verdict schema, free text where the endpoint rejects it). Returns counts for the log."""
    lines = list(read_jsonl(shard_path))
    sources = {line["id"]: line["record"] for line in lines}
    requests = ShardRequests(journal_path, {line["id"]: line["index"] for line in lines}, retry_rejected)
    pipeline, columns = settings.pipeline, settings.columns
    records = list(read_jsonl(refined_path))
    items: dict[str, _Judging] = {}
    unasked: dict[str, dict] = {}  # records whose request could not be made
    for record in records:
        record_id = str(record[columns.id])
        qas = pipeline.qas(record, columns)
        if not qas:
            continue
        try:
            task, digests = judge_task(record_id, sources[record_id], qas,
                                       pipeline.context(record, columns), settings, prompt)
        except Exception as err:  # one record's bad image must not stop the shard
            kind = "image" if isinstance(err, images.ImageError) else "internal"
            unasked[record_id] = requests.failure(record_id, f"{type(err).__name__}: {err}", kind)
            continue
        items[record_id] = _Judging(task, digests, len(qas))
    spent: dict[tuple[str, str], list[dict]] = {}
    rebuild = partial(_judge_requests, items, requests, settings, spent)
    asking = rebuild(backend)
    answers, asked_failures = requests.run(
        backend, asking, "verify",
        lambda plan: (f"{Path(shard_path).stem}: {len(asking)} records to verify, {len(plan.answers)} stored, "
                      f"{len(plan.pending)} to ask"),
        rebuild if auto else None)
    failed = {**unasked, **asked_failures}
    return _write(records, answers, failed, spent, requests, settings, model, output_path, failed_path,
                  Path(shard_path).stem)


def _write(records: list[dict], answers: dict[str, dict], failed: dict[str, dict],
           spent: dict[tuple[str, str], list[dict]],
           requests: ShardRequests, settings: PromptSettings, model: str, output_path: str | Path,
           failed_path: str | Path, shard: str) -> dict:
    """The verified records and verify_failed entries, in shard order; counts for the log."""
    pipeline, columns = settings.pipeline, settings.columns
    counts = {"records": len(records), "verified": 0, "failed": 0, "transient": 0}
    failures: list[dict] = []
    with Path(output_path).open("w", encoding="utf-8") as out:
        for record in records:
            record_id = str(record[columns.id])
            qas = pipeline.qas(record, columns)
            failure = failed.get(record_id)
            if record_id in answers:
                entry = answers[record_id]
                record["verify"], failure = _apply(entry, spent.get((record_id, entry["fp"]), []), qas, model,
                                                   requests, record_id)
            elif failure is not None:
                _unjudged(qas)
                record["verify"] = {"model": model, "status": "failed", "error": failure["error"],
                                    "kind": failure["kind"], "transient": failure["transient"]}
            else:
                record["verify"] = {"model": model, "status": "skipped"}  # no pairs to judge
            if failure is not None:
                failures.append(failure)
                counts["transient"] += failure["transient"]
            else:
                counts["verified"] += record["verify"]["status"] == "ok"
            out.write(encode(record) + "\n")
    counts["failed"] = len(failures)
    with Path(failed_path).open("w", encoding="utf-8") as bad:
        for failure in failures:
            bad.write(encode(failure) + "\n")
    tell(f"{shard}: verified {json.dumps(counts)}")
    return counts


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
