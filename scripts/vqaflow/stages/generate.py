"""The generate stage: one shard's records through the pipeline's steps and a repair pass.

Every record ends as an answer or a failure of its own: a record that cannot be prepared
(bad image, bad conversation, anything unexpected) fails alone, and the backends turn
every request-level problem into that record's outcome. Answers and permanent failures go
to the shard's journal as they arrive, so a rerun asks only for what is missing; failures
another attempt may fix are marked ``transient`` and retried by the next run.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

from .. import images
from ..backends.base import Backend, GenerationTask
from ..jsonl import encode, read_jsonl
from ..logs import tell
from ..pipelines import Step
from ..prompts import Prompt, PromptError, PromptSettings, build_prompt, step_prompt
from ..requests import Request, ShardRequests, Used, content_key, fingerprint, task_seed
from .reformat import ReformatSettings, reformat_answers, reformat_backend
from .repair import RepairSettings, repair_answers

PREPARE_THREADS = 8


@dataclass
class Generated:
    """A shard's records after generation: answers and failures by record id, each record's
    task (None when it failed before asking), and the requests asked through the journal."""

    answers: dict[str, dict]
    failures: dict[str, dict]
    tasks: dict[str, GenerationTask | None]
    requests: ShardRequests
    repaired: int
    reformat: dict = field(default_factory=dict)  # the reformat pass's counts


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


def step_backend(backend: Backend, step: Step, settings: PromptSettings) -> Backend:
    """``backend`` asking with the step's JSON schema when ``structured_output`` is on."""
    if settings.structured_output and step.schema is not None:
        return backend.repairer(backend.sampling.max_tokens, step.schema)
    return backend


def _step_task(step: Step, n: int, first: GenerationTask, digests: list[str], earlier: dict[str, str],
               settings: PromptSettings) -> tuple[GenerationTask, list[str]]:
    """A record's task for step ``n`` (``first``: its prepared task; ``earlier``: the
    answers of the steps before, by name) and the digests of the images it sends."""
    images, digests = (first.prompt.images, digests) if step.images else ((), [])
    if n == 0:
        return replace(first, prompt=replace(first.prompt, images=images)), digests
    prompt = step_prompt(step, earlier, images)
    key = content_key(prompt, digests) if settings.dedup_requests else first.id
    return GenerationTask(first.id, prompt, task_seed(settings.seed, key)), digests


def _first_requests(prepared: dict[str, tuple[GenerationTask, list[str]]], identity: dict,
                    max_pixels: int) -> tuple[dict[str, Request], dict[str, str]]:
    """The first step's requests by record id, each asked once: a record whose request is
    identical to an earlier record's is a copy (record id -> the record answering it)."""
    asking: dict[str, Request] = {}
    first_of: dict[str, str] = {}  # fingerprint -> the first record asking it
    copies: dict[str, str] = {}
    for record_id, (task, digests) in prepared.items():
        fp = fingerprint(identity, task, digests, max_pixels)
        if fp in first_of:
            copies[record_id] = first_of[fp]
        else:
            first_of[fp] = record_id
            asking[record_id] = Request(task, fp)
    return asking, copies


def _rebuilt_first(prepared: dict[str, tuple[GenerationTask, list[str]]], max_pixels: int,
                   backend: Backend) -> dict[str, Request]:
    """The first step's requests for ``backend`` (``structured_output: auto``'s free text)."""
    return _first_requests(prepared, backend.identity(), max_pixels)[0]


def _step_requests(tasks: dict[str, tuple[GenerationTask, list[str]]], max_pixels: int,
                   backend: Backend) -> dict[str, Request]:
    """A later step's requests for ``backend``, by record id."""
    return {rid: Request(task, fingerprint(backend.identity(), task, digests, max_pixels))
            for rid, (task, digests) in tasks.items()}


def generate_records(lines: list[dict], name: str, journal_path: str | Path, settings: PromptSettings,
                     backend: Backend, repair: RepairSettings, retry_rejected: bool = False,
                     reformat: ReformatSettings | None = None) -> Generated:
    """Generate the answers of ``lines`` (shard lines, called ``name`` in the log), resuming
    from the journal: the pipeline's steps in order, each for the records whose previous
    step answered, then the repair of the last step's answers, each answer parsed once
    (``parsed``), and the reformat of those not ``ok``. A record whose first request is
    identical to an earlier record's is not asked but answered by it (``duplicate_of``)."""
    requests = ShardRequests(journal_path, {line["id"]: line["index"] for line in lines}, retry_rejected)
    failures: dict[str, dict] = {}
    steps = settings.pipeline.steps
    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
        results = list(pool.map(lambda line: _safe_prepare(line, settings), lines))
    prepared: dict[str, tuple[GenerationTask, list[str]]] = {}
    for line, (result, error) in zip(lines, results):
        if error is not None:
            failures[line["id"]] = requests.failure(line["id"], error[1], error[0])
        else:
            prepared[line["id"]] = _step_task(steps[0], 0, *result, {}, settings)
    chain: dict[str, dict[str, str]] = {rid: {} for rid in prepared}  # the answers of the steps so far
    answers: dict[str, dict] = {}
    auto = settings.structured_output == "auto"  # the schema, free text where it is rejected
    for n, step in enumerate(steps):
        asker = step_backend(backend, step, settings)
        if n == 0:
            asking, copies = _first_requests(prepared, asker.identity(), settings.max_pixels)
            rebuild = partial(_rebuilt_first, prepared, settings.max_pixels)
            identical = f", {len(copies)} identical to another" if copies else ""
            describe = lambda plan: (  # noqa: E731
                f"{name}: {len(lines)} records, {len(plan.answers)} stored, {len(plan.pending)} to ask"
                f"{identical}, {len(failures) + len(plan.failures)} failed before asking")
        else:
            describe = None
            tasks = {rid: _step_task(step, n, *prepared[rid], chain[rid], settings) for rid in answers}
            rebuild = partial(_step_requests, tasks, settings.max_pixels)
            asking = rebuild(asker)
        answers, failed = requests.run(asker, asking, step.name, describe, rebuild if auto else None)
        failures.update(failed)
        for rid, entry in answers.items():
            chain[rid][step.name] = entry["answer"]
    if auto:
        asker = requests.as_asked(asker)
    parses = {rid: settings.pipeline.parse(entry["answer"], entry["generation"].get("finish_reason"))
              for rid, entry in answers.items()}
    repaired = repair_answers(requests, answers, parses, asking, settings, asker, repair) if repair.enabled else 0
    reformatted = {}
    if reformat is not None and reformat.enabled:
        reformatter = reformat_backend(reformat, backend, settings.pipeline, settings.max_pixels)
        if not settings.structured_output:  # false: no request carries a schema
            reformatter = reformatter.free_text()
        reformatted = reformat_answers(requests, answers, parses, settings.pipeline, settings.seed, reformatter,
                                       auto=auto)
    for rid, entry in answers.items():
        used = requests.used[rid]
        if len(steps) > 1:
            entry = {**entry, "steps": {step.name: chain[rid][step.name] for step in steps[:-1]}}
        if len(used) > 1:
            entry = {**entry, "generation": {**entry["generation"], "paid": _paid(used)}}
        answers[rid] = {**entry, "parsed": parses[rid]}
    for copy, original in copies.items():
        if original in answers:
            answers[copy] = {**answers[original], "id": copy, "duplicate_of": original}
        else:
            failures[copy] = {**failures[original], "id": copy, "index": requests.index_of[copy]}
    tasks = {line["id"]: prepared[line["id"]][0] if line["id"] in prepared else None for line in lines}
    return Generated(answers, failures, tasks, requests, repaired, reformatted)


def _paid(used: list[Used]) -> dict:
    """What an answer that took several requests paid: the requests and their tokens."""
    return {"requests": len(used), **{name: sum(u.entry["generation"].get(name) or 0 for u in used)
                                      for name in ("prompt_tokens", "completion_tokens")}}


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
    reformat: ReformatSettings | None = None,
) -> dict:
    """Generate the answers of one shard, resuming from its journal.

    Writes every answered record (in shard order) to ``output_path`` and every record
    that could not be answered to ``failed_path``; records in ``skip`` (near-duplicate
    images) are not asked at all. Returns counts for the log.
    """
    shard = Path(shard_path).stem
    lines = [line for line in read_jsonl(shard_path) if line["id"] not in skip]
    done = generate_records(lines, shard, journal_path, settings, backend, repair, retry_rejected, reformat)
    write_outputs(lines, done.answers, done.failures, output_path, failed_path)
    summary = {"records": len(lines), "answered": len(done.answers), "failed": len(done.failures),
               "transient": sum(f["transient"] for f in done.failures.values()), "repaired": done.repaired}
    if done.reformat:
        summary["reformat"] = done.reformat
    tell(f"{shard}: done {json.dumps(summary)}")
    return summary


def generated_line(line: dict, entry: dict) -> dict:
    """A generated/ line: the record's id and index, its answer (and the earlier steps'),
    how it was generated, and what it was read into (``parsed``); its input record stays in
    shards/, which the refine stage reads beside it."""
    generation = {"repaired": False, "reformatted": False, **entry["generation"]}
    if "duplicate_of" in entry:
        generation["duplicate_of"] = entry["duplicate_of"]
    steps = {"steps": entry["steps"]} if "steps" in entry else {}
    return {"id": line["id"], "index": line["index"], "answer": entry["answer"], **steps,
            "generation": generation, "parsed": asdict(entry["parsed"])}


def write_outputs(lines: list[dict], answers: dict[str, dict], failures: dict[str, dict],
                  output_path: str | Path, failed_path: str | Path) -> None:
    """The answered records (:func:`generated_line`) and the failures, in the order of ``lines``."""
    output_path, failed_path = Path(output_path), Path(failed_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", encoding="utf-8") as out, failed_path.open("w", encoding="utf-8") as bad:
        for line in lines:
            rid = line["id"]
            if rid in answers:
                out.write(encode(generated_line(line, answers[rid])) + "\n")
            elif rid in failures:
                bad.write(encode(failures[rid]) + "\n")
            else:
                raise RuntimeError(f"record {rid!r} got no outcome from the backend")
