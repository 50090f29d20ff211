"""Verification by a judge model: one request per record, a verdict per pair.

The judge gets the record's image(s), the article (pipelines with one) and all of its
pairs, numbered, and answers per pair whether it is answerable and correct. Requests go
through the same backends and the same per-shard journal as generation (keyed by their
own fingerprint), so a killed verify job resumes and nothing is paid twice. A pair the
judge did not cover gets ``verdict: null``; a record whose verification failed keeps its
pairs with ``verdict: null`` and is listed with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import images
from ..backends.base import Backend, GenerationTask
from ..jsonl import encode, read_jsonl
from ..logs import tell
from ..prompts import Prompt, PromptSettings, record_images
from ..quality import judge, parse
from ..requests import Request, ShardRequests, fingerprint, task_seed


def judge_task(record_id: str, source: dict, qas: list[dict], context: str | None,
               settings: PromptSettings, prompt: str) -> tuple[GenerationTask, list[str]]:
    """The judge request for one record, and its image digests (raises on a bad image)."""
    refs = tuple(images.resolve(ref, settings.image_root) for ref in record_images(source, settings.columns))
    pairs = [{"question": qa["question"], "answer": qa["answer"]} for qa in qas]
    text = judge.judge_text(prompt, pairs, context)
    task = GenerationTask(record_id, Prompt(judge.JUDGE_SYSTEM_PROMPT, (("user", text),), refs),
                          task_seed(settings.seed, record_id))
    return task, [images.digest(ref) for ref in refs]


def _unjudged(qas: list[dict]) -> None:
    for qa in qas:
        qa["verdict"] = None


def verify_shard(
    refined_path: str | Path, shard_path: str | Path, output_path: str | Path, failed_path: str | Path,
    journal_path: str | Path, settings: PromptSettings, backend: Backend, prompt: str, model: str,
    retry_rejected: bool = False,
) -> dict:
    """Judge every record of a refined shard; writes the records with their verdicts and
    the records whose verification failed. Returns counts for the log."""
    lines = list(read_jsonl(shard_path))
    sources = {line["id"]: line["record"] for line in lines}
    requests = ShardRequests(journal_path, {line["id"]: line["index"] for line in lines}, retry_rejected)
    pipeline, columns = settings.pipeline, settings.columns
    identity = backend.identity()
    records = list(read_jsonl(refined_path))
    asking: dict[str, Request] = {}
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
        asking[record_id] = Request(task, fingerprint(identity, task, digests, settings.max_pixels))
    answers, asked_failures = requests.run(
        backend, asking, "verify",
        lambda plan: (f"{Path(shard_path).stem}: {len(asking)} records to verify, {len(plan.answers)} stored, "
                      f"{len(plan.pending)} to ask"))
    failed = {**unasked, **asked_failures}
    failures = {rid: failed[rid] for rid in map(str, (record[columns.id] for record in records)) if rid in failed}

    counts = {"records": len(records), "verified": 0, "failed": len(failures), "transient": 0}
    with Path(output_path).open("w", encoding="utf-8") as out:
        for record in records:
            record_id = str(record[columns.id])
            qas = pipeline.qas(record, columns)
            if record_id in answers:
                record["verify"] = _apply(answers[record_id], qas, model)
                counts["verified"] += 1
            elif record_id in failures:
                _unjudged(qas)
                failure = failures[record_id]
                record["verify"] = {"model": model, "status": "failed", "error": failure["error"],
                                    "kind": failure["kind"]}
            else:
                record["verify"] = {"model": model, "status": "skipped"}  # no pairs to judge
            out.write(encode(record) + "\n")
    with Path(failed_path).open("w", encoding="utf-8") as bad:
        for failure in failures.values():
            bad.write(encode(failure) + "\n")
            counts["transient"] += failure["transient"]
    tell(f"{Path(shard_path).stem}: verified {json.dumps(counts)}")
    return counts


def _apply(entry: dict, qas: list[dict], model: str) -> dict:
    """Put the judge's verdicts on the pairs; the record's ``verify`` summary."""
    verdicts, issues = judge.read_verdicts(parse.read_json(entry["answer"]), len(qas))
    for qa, verdict in zip(qas, verdicts):
        qa["verdict"] = verdict
    generation = entry["generation"]
    covered = sum(verdict is not None for verdict in verdicts)
    return {
        "model": generation.get("model") or model,
        "status": "ok" if covered == len(qas) else "partial",
        "issues": issues,
        "attempts": generation.get("attempts"),
        "latency_s": generation.get("latency_s"),
        "tokens": {"prompt": generation.get("prompt_tokens") or 0,
                   "completion": generation.get("completion_tokens") or 0},
    }
