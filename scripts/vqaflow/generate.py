"""Generation of one shard: prompts, journal look-up, backend call, shard outputs."""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import images
from .backends.base import Backend, GenerationTask, Outcome
from .journal import JournalWriter, read_journal
from .prompts import Prompt, PromptError, build_prompt
from .records import Keys, read_jsonl


@dataclass(frozen=True)
class PromptSettings:
    """How records become prompts (from the config)."""

    pipeline: str
    keys: Keys = Keys()
    system_prompt: str | None = None
    prompt: str | None = None
    image_root: str = "."
    max_pixels: int = images.DEFAULT_MAX_PIXELS
    seed: int | None = None


def task_seed(seed: int | None, record_id: str) -> int | None:
    """A per-record seed derived from the run's seed and the record id."""
    if seed is None:
        return None
    return int.from_bytes(hashlib.sha256(f"{seed}:{record_id}".encode()).digest()[:4], "big")


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


def _prepare(line: dict, settings: PromptSettings) -> tuple[GenerationTask, list[str]]:
    """Build a record's task and fingerprint its images (raises on a bad record)."""
    record_id = line["id"]
    prompt = build_prompt(
        line["record"], record_id, settings.pipeline, settings.keys,
        settings.system_prompt, settings.prompt,
    )
    resolved = tuple(images.resolve(ref, settings.image_root) for ref in prompt.images)
    digests = [images.digest(ref) for ref in resolved]
    prompt = Prompt(system=prompt.system, turns=prompt.turns, images=resolved)
    return GenerationTask(record_id, prompt, task_seed(settings.seed, record_id)), digests


def _failure(line: dict, error: str, kind: str, generation: dict | None = None) -> dict:
    entry = {"id": line["id"], "index": line["index"], "error": error, "kind": kind}
    if generation:
        entry["attempts"] = generation.get("attempts")
    return entry


def generate_shard(
    shard_path: str | Path,
    output_path: str | Path,
    failed_path: str | Path,
    journal_path: str | Path,
    settings: PromptSettings,
    backend: Backend,
) -> dict:
    """Generate the answers of one shard, resuming from its journal.

    Writes every answered record (in shard order) to ``output_path`` and every record
    that could not be answered to ``failed_path``; returns counts for the log.
    """
    lines = list(read_jsonl(shard_path))
    identity = backend.identity()
    failures: dict[str, dict] = {}
    tasks: dict[str, tuple[GenerationTask, str]] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        prepared = list(pool.map(lambda line: _safe_prepare(line, settings), lines))
    for line, (result, error) in zip(lines, prepared):
        if error is not None:
            failures[line["id"]] = _failure(line, error[1], error[0])
        else:
            task, digests = result
            tasks[task.id] = (task, fingerprint(identity, task, digests, settings.max_pixels))

    journal = read_journal(journal_path)
    answers = {
        rid: entry for rid, (_, fp) in tasks.items()
        if (entry := journal.get(rid)) is not None and entry["fp"] == fp
    }
    pending = [task for rid, (task, _) in tasks.items() if rid not in answers]
    print(
        f"{shard_path}: {len(lines)} records, {len(answers)} from the journal, "
        f"{len(pending)} to generate, {len(failures)} rejected before generation",
        file=sys.stderr,
    )
    by_id = {line["id"]: line for line in lines}
    progress = tqdm(total=len(pending), desc="generate", file=sys.stderr, mininterval=5, unit="rec")

    with JournalWriter(journal_path) as writer:

        def on_outcome(outcome: Outcome) -> None:
            if outcome.ok:
                entry = {
                    "id": outcome.id, "fp": tasks[outcome.id][1],
                    "answer": outcome.answer, "generation": outcome.generation,
                }
                writer.append(entry)
                answers[outcome.id] = entry
            else:
                failures[outcome.id] = _failure(
                    by_id[outcome.id], outcome.error, outcome.error_kind or "error",
                    outcome.generation,
                )
            progress.update(1)
            progress.set_postfix(failed=len(failures), refresh=False)

        try:
            if pending:
                backend.run(pending, on_outcome)
        finally:
            progress.close()

    _write_outputs(lines, answers, failures, output_path, failed_path)
    summary = {"records": len(lines), "answered": len(answers), "failed": len(failures)}
    print(f"{shard_path}: done {json.dumps(summary)}", file=sys.stderr)
    return summary


def _safe_prepare(line: dict, settings: PromptSettings):
    try:
        return _prepare(line, settings), None
    except PromptError as err:
        return None, ("prompt", str(err))
    except images.ImageError as err:
        return None, ("image", str(err))


def _write_outputs(lines, answers, failures, output_path, failed_path) -> None:
    output_path, failed_path = Path(output_path), Path(failed_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", encoding="utf-8") as out, failed_path.open("w", encoding="utf-8") as bad:
        for line in lines:
            rid = line["id"]
            if rid in answers:
                entry = answers[rid]
                row = {**line, "answer": entry["answer"], "generation": entry["generation"]}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            elif rid in failures:
                bad.write(json.dumps(failures[rid], ensure_ascii=False) + "\n")
            else:
                raise RuntimeError(f"record {rid!r} got no outcome from the backend")
