"""Generation of one shard: prompts, stored answers, backend calls, a repair pass, outputs.

Every record ends as an answer or a failure of its own: a record that cannot be prepared
(bad image, bad conversation, anything unexpected) fails alone, and the backends turn
every request-level problem into that record's outcome. Answers and permanent failures go
to the shard's journal as they arrive, so a rerun asks only for what is missing; failures
another attempt may fix are marked ``transient`` and retried by the next run.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import images
from .backends.base import Backend, GenerationTask, Outcome
from .journal import JournalWriter, read_journal
from .jsonl import encode, read_jsonl
from .prompts import Prompt, PromptError, PromptSettings, build_prompt
from .quality import parse

# failures that another attempt cannot fix; every other kind is retried by the next run
PERMANENT_KINDS = frozenset({"rejected", "image", "prompt"})
PREPARE_THREADS = 8
PARSE_RANK = {"none": 0, "partial": 1, "ok": 2}


@dataclass(frozen=True)
class RepairSettings:
    """The ``repair:`` section: cut-off or unreadable answers are asked once more."""

    enabled: bool
    max_tokens_factor: float
    structured_output: bool


def task_seed(seed: int | None, key: str) -> int | None:
    """A per-request seed derived from the run's seed and ``key`` (the record id, or the
    request's content when identical requests are asked once)."""
    if seed is None:
        return None
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "big")


def content_key(prompt: Prompt, image_digests: list[str]) -> str:
    """What makes two records the same request: system prompt, turns and image bytes."""
    return hashlib.sha256(json.dumps([prompt.system, prompt.turns, image_digests]).encode()).hexdigest()


def fingerprint(identity: dict, task: GenerationTask, image_digests: list[str], max_pixels: int) -> str:
    """A hash of everything that shapes a record's answer."""
    shaping = {
        "backend": identity,
        "system": task.prompt.system,
        "turns": task.prompt.turns,
        "images": image_digests,
        "max_pixels": max_pixels,
        "seed": task.seed,
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:32]


def repair_fingerprint(identity: dict, fp: str) -> str:
    """The fingerprint of the repair of the request fingerprinted ``fp``."""
    return hashlib.sha256(f"{json.dumps(identity, sort_keys=True)}:{fp}".encode()).hexdigest()[:32]


def prepare(line: dict, settings: PromptSettings) -> tuple[GenerationTask, list[str]]:
    """Build a record's task and fingerprint its images (raises on a bad record)."""
    record_id = line["id"]
    image = line["record"].get(settings.columns.image)
    if isinstance(image, dict) and not image.get("bytes") and not image.get("path"):
        raise images.ImageError(f"{settings.columns.image!r} is an image with neither bytes nor path")
    prompt = build_prompt(line["record"], record_id, settings)
    resolved = tuple(images.resolve(ref, settings.image_root) for ref in prompt.images)
    digests = [images.digest(ref) for ref in resolved]
    prompt = Prompt(system=prompt.system, turns=prompt.turns, images=resolved)
    key = content_key(prompt, digests) if settings.dedup_requests else record_id
    return GenerationTask(record_id, prompt, task_seed(settings.seed, key)), digests


def _safe_prepare(line: dict, settings: PromptSettings):
    """``prepare``, with any problem turned into ``(kind, reason)``."""
    try:
        return prepare(line, settings), None
    except PromptError as err:
        return None, ("prompt", str(err))
    except images.ImageError as err:
        return None, ("image", str(err))
    except Exception as err:  # one record's bug must not stop its shard
        return None, ("internal", f"{type(err).__name__}: {err}")


def _failure(line: dict, error: str, kind: str, attempts: int | None = None) -> dict:
    return {
        "id": line["id"], "index": line["index"], "error": error, "kind": kind, "attempts": attempts,
        "transient": kind not in PERMANENT_KINDS,
        "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _parse_rank(entry: dict, want_article: bool) -> tuple[int, int]:
    parsed = parse.parse_answer(entry["answer"], want_article, entry["generation"].get("finish_reason"))
    return PARSE_RANK[parsed.status], len(parsed.qas)


class ShardRequests:
    """One shard's records, the requests its journal holds, and asking for the rest."""

    def __init__(self, lines: list[dict], journal_path: str | Path, retry_rejected: bool):
        self.lines = {line["id"]: line for line in lines}
        self.journal = read_journal(journal_path)
        self.journal_path = journal_path
        self.retry_rejected = retry_rejected

    def stored(self, record_id: str, fp: str) -> dict | None:
        """The journal's entry for this request, unless it is a rejection to retry."""
        entry = self.journal.get(record_id, {}).get(fp)
        if entry is not None and "error" in entry and self.retry_rejected:
            return None
        return entry

    def failure(self, record_id: str, error: str, kind: str, attempts: int | None = None) -> dict:
        """A failed.jsonl entry for a record of this shard."""
        return _failure(self.lines[record_id], error, kind, attempts)

    def ask(self, backend: Backend, tasks: list[tuple[GenerationTask, str]],
            what: str) -> tuple[dict[str, dict], dict[str, dict]]:
        """Run ``(task, fingerprint)`` pairs through ``backend``; answers and permanent
        failures are journaled as they arrive. Returns (answers, failures) by record id."""
        answers: dict[str, dict] = {}
        failures: dict[str, dict] = {}
        if not tasks:
            return answers, failures
        fps = {task.id: fp for task, fp in tasks}
        progress = tqdm(total=len(tasks), desc=what, file=sys.stderr, mininterval=5, unit="rec")
        with JournalWriter(self.journal_path) as writer:

            def on_outcome(outcome: Outcome) -> None:
                fp = fps[outcome.id]
                attempts = outcome.generation.get("attempts")
                if outcome.ok:
                    entry = {"id": outcome.id, "fp": fp, "answer": outcome.answer,
                             "generation": outcome.generation}
                    writer.append(entry)
                    answers[outcome.id] = entry
                else:
                    kind = outcome.error_kind or "error"
                    if kind in PERMANENT_KINDS:
                        writer.append({"id": outcome.id, "fp": fp, "error": outcome.error,
                                       "kind": kind, "attempts": attempts})
                    failures[outcome.id] = self.failure(outcome.id, outcome.error, kind, attempts)
                progress.update(1)

            try:
                backend.run([task for task, _ in tasks], on_outcome)
            finally:
                progress.close()
        return answers, failures


def generate_shard(
    shard_path: str | Path,
    output_path: str | Path,
    failed_path: str | Path,
    journal_path: str | Path,
    settings: PromptSettings,
    backend: Backend,
    repair: RepairSettings,
    retry_rejected: bool = False,
    skip: frozenset[str] = frozenset(),
) -> dict:
    """Generate the answers of one shard, resuming from its journal.

    Writes every answered record (in shard order) to ``output_path`` and every record
    that could not be answered to ``failed_path``; records in ``skip`` (near-duplicate
    images) are not asked at all. Returns counts for the log.
    """
    shard = Path(shard_path).stem
    lines = [line for line in read_jsonl(shard_path) if line["id"] not in skip]
    run = ShardRequests(lines, journal_path, retry_rejected)
    answers: dict[str, dict] = {}
    failures: dict[str, dict] = {}
    identity = backend.identity()
    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
        prepared = list(pool.map(lambda line: _safe_prepare(line, settings), lines))
    tasks: dict[str, tuple[GenerationTask, str]] = {}
    first_of: dict[str, str] = {}  # fingerprint -> the first record asking it
    copies: dict[str, str] = {}  # record id -> the record whose identical request answers it
    for line, (result, error) in zip(lines, prepared):
        if error is not None:
            failures[line["id"]] = _failure(line, error[1], error[0])
            continue
        task, digests = result
        fp = fingerprint(identity, task, digests, settings.max_pixels)
        if fp in first_of:
            copies[task.id] = first_of[fp]
            continue
        first_of[fp] = task.id
        tasks[task.id] = (task, fp)
        entry = run.stored(task.id, fp)
        if entry is not None and "answer" in entry:
            answers[task.id] = entry
        elif entry is not None:
            failures[task.id] = _failure(line, entry["error"], entry["kind"], entry.get("attempts"))
    pending = [tasks[rid] for rid in tasks if rid not in answers and rid not in failures]
    identical = f", {len(copies)} identical to another" if copies else ""
    tell(f"{shard}: {len(lines)} records, {len(answers)} stored, {len(pending)} to ask{identical}, "
         f"{len(failures)} failed before asking")
    new_answers, new_failures = run.ask(backend, pending, "generate")
    answers.update(new_answers)
    failures.update(new_failures)
    repaired = _repair(run, answers, tasks, settings, backend, repair) if repair.enabled else 0
    for copy, original in copies.items():
        if original in answers:
            answers[copy] = {**answers[original], "id": copy, "duplicate_of": original}
        else:
            failures[copy] = {**failures[original], "id": copy, "index": run.lines[copy]["index"]}
    _write_outputs(lines, answers, failures, output_path, failed_path)
    summary = {"records": len(lines), "answered": len(answers), "failed": len(failures),
               "transient": sum(f["transient"] for f in failures.values()), "repaired": repaired}
    tell(f"{shard}: done {json.dumps(summary)}")
    return summary


def _repair(run: ShardRequests, answers: dict[str, dict], tasks: dict, settings: PromptSettings,
            backend: Backend, repair: RepairSettings) -> int:
    """Ask cut-off or unreadable answers once more with more tokens (and optionally the JSON
    schema); keep whichever answer parses better. Returns the number of records improved."""
    want_article = settings.pipeline.want_article
    schema = settings.pipeline.answer_schema() if repair.structured_output else None
    fixer = backend.repairer(math.ceil(backend.sampling.max_tokens * repair.max_tokens_factor), schema)
    identity = fixer.identity()
    ranks = {rid: _parse_rank(entry, want_article) for rid, entry in answers.items()}
    candidates = {rid: entry for rid, entry in answers.items()  # cut off, or nothing readable
                  if entry["generation"].get("finish_reason") == "length" or ranks[rid][0] == PARSE_RANK["none"]}
    repairs: dict[str, dict] = {}
    pending = []
    for rid in candidates:
        task, first_fp = tasks[rid]
        fp = repair_fingerprint(identity, first_fp)
        entry = run.stored(rid, fp)
        if entry is not None and "answer" in entry:
            repairs[rid] = entry
        elif entry is None:
            pending.append((task, fp))

    repairs.update(run.ask(fixer, pending, "repair")[0])
    improved = 0
    for rid, entry in repairs.items():
        first, second = candidates[rid]["generation"], entry["generation"]
        paid = {"requests": 2, **{name: (first.get(name) or 0) + (second.get(name) or 0)
                                  for name in ("prompt_tokens", "completion_tokens")}}
        if _parse_rank(entry, want_article) > ranks[rid]:
            answers[rid] = {**entry, "generation": {**second, "repaired": True, "paid": paid}}
            improved += 1
        else:
            answers[rid] = {**candidates[rid], "generation": {**first, "paid": paid}}
    return improved


def tell(message: str) -> None:
    """One line to the log and one to the terminal."""
    print(message, file=sys.stderr)
    if sys.stderr is not sys.__stderr__:
        print(f"vqaflow: {message}", file=sys.__stderr__, flush=True)


def _write_outputs(lines, answers, failures, output_path, failed_path) -> None:
    output_path, failed_path = Path(output_path), Path(failed_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", encoding="utf-8") as out, failed_path.open("w", encoding="utf-8") as bad:
        for line in lines:
            rid = line["id"]
            if rid in answers:
                entry = answers[rid]
                generation = {"repaired": False, **entry["generation"]}
                if "duplicate_of" in entry:
                    generation["duplicate_of"] = entry["duplicate_of"]
                out.write(encode({**line, "answer": entry["answer"], "generation": generation}))
                out.write("\n")
            elif rid in failures:
                bad.write(encode(failures[rid]) + "\n")
            else:
                raise RuntimeError(f"record {rid!r} got no outcome from the backend")
