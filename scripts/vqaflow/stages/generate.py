"""The generate stage: one shard's records through the pipeline's steps (:mod:`.steps`), a
repair pass and a reformat pass.

Every record ends as an answer or a failure of its own: a record that cannot be prepared
(bad image, bad conversation, anything unexpected) fails alone, and the backends turn
every request-level problem into that record's outcome. Answers and permanent failures go
to the shard's journal as they arrive, so a rerun asks only for what is missing; failures
another attempt may fix are marked ``transient`` and retried by the next run.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from .. import images
from ..backends.base import Backend, GenerationTask
from ..jsonl import encode, read_jsonl
from ..logs import tell
from ..pipelines import ONE, Answer
from ..prompts import Prompt, PromptError, PromptSettings, build_prompt
from ..quality.parse import Parse
from ..requests import ShardRequests, Used, content_key, task_seed
from .reformat import ReformatSettings, reformat_answers, reformat_backend
from .repair import RepairSettings, repair_answers
from .steps import Chain

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


def generate_records(lines: list[dict], name: str, journal_path: str | Path, settings: PromptSettings,
                     backend: Backend, repair: RepairSettings, retry_rejected: bool = False,
                     reformat: ReformatSettings | None = None) -> Generated:
    """Generate the answers of ``lines`` (shard lines, called ``name`` in the log), resuming
    from the journal: the pipeline's steps in order (:class:`~.steps.Chain`), each for the
    records every earlier step answered, then the repair of the last step's answers, each
    record's outputs read once (``parsed``), and the reformat of those not ``ok``. A record
    whose first request is identical to an earlier record's is not asked but answered by it
    (``duplicate_of``)."""
    requests = ShardRequests(journal_path, {line["id"]: line["index"] for line in lines}, retry_rejected)
    chain = Chain(settings, requests)
    pipeline = settings.pipeline
    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
        results = list(pool.map(lambda line: _safe_prepare(line, settings), lines))
    for line, (result, error) in zip(lines, results):
        if error is not None:
            chain.fail(line["id"], error[0], error[1])
        else:
            chain.first_task(line["id"], pipeline.steps[0], *result)
    chain.run(backend, name, len(lines), len(chain.failures))
    answers, parses = _read(chain)
    asker = requests.as_asked(chain.asker) if settings.structured_output == "auto" else chain.asker
    repaired = 0
    if repair.enabled and pipeline.repairs:
        repaired = repair_answers(requests, answers, parses, chain.asked, settings, asker, repair,
                                  partial(_reread, chain))
    reformatted = {}
    if reformat is not None and reformat.enabled and pipeline.reformats:
        reformatter = reformat_backend(reformat, backend, pipeline, settings.max_pixels)
        if not settings.structured_output:  # false: no request carries a schema
            reformatter = reformatter.free_text()
        reformatted = reformat_answers(requests, answers, parses, pipeline, settings.seed, reformatter,
                                       auto=settings.structured_output == "auto")
    for rid, entry in answers.items():
        used = requests.used[rid]
        if len(pipeline.steps) > 1:
            entry = {**entry, "steps": chain.steps_text(rid)}
        if len(used) > 1:
            entry = {**entry, "generation": {**entry["generation"], "paid": _paid(used)}}
        answers[rid] = {**entry, "parsed": parses[rid]}
    failures = chain.failures
    for copy, original in chain.copies.items():
        if original in answers:
            answers[copy] = {**answers[original], "id": copy, "duplicate_of": original}
        else:
            failures[copy] = {**failures[original], "id": copy, "index": requests.index_of[copy]}
    tasks = {line["id"]: chain.prepared[line["id"]][0] if line["id"] in chain.prepared else None for line in lines}
    return Generated(answers, failures, tasks, requests, repaired, reformatted)


def _read(chain: Chain) -> tuple[dict[str, dict], dict[str, Parse]]:
    """Each answered record's entry of the answer step and its outputs read from every step's
    result (a record whose results cannot be read fails alone)."""
    pipeline = chain.settings.pipeline
    answers: dict[str, dict] = {}
    parses: dict[str, Parse] = {}
    for rid in chain.live():
        try:
            parses[rid] = pipeline.read(chain.inp(rid))
        except Exception as err:  # one record's bug must not stop its shard
            chain.fail(rid, "internal", f"reading the answers: {type(err).__name__}: {err}")
            continue
        answers[rid] = chain.entries[rid][pipeline.answer_step.name][ONE]
    return answers, parses


def _reread(chain: Chain, record_id: str, entry: dict) -> Parse:
    """A record's outputs with ``entry`` (a repair's) as the last step's answer."""
    last = chain.settings.pipeline.steps[-1]
    earlier = {name: result for name, result in chain.results[record_id].items() if name != last.name}
    answer = Answer(entry["answer"], entry["generation"].get("finish_reason"))
    result = last.result(chain.inp(record_id, earlier), {ONE: answer})
    return chain.settings.pipeline.read(chain.inp(record_id, {**earlier, last.name: result}))


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
    """A generated/ line: the record's id and index, its answer (and the other steps'), how it
    was generated, and what it was read into (``parsed``, with the pipeline's output ``fields``
    when it has any); its input record stays in shards/, which the refine stage reads beside it."""
    generation = {"repaired": False, "reformatted": False, **entry["generation"]}
    if "duplicate_of" in entry:
        generation["duplicate_of"] = entry["duplicate_of"]
    steps = {"steps": entry["steps"]} if "steps" in entry else {}
    parsed = asdict(entry["parsed"])
    if not parsed["fields"]:  # pipelines of pairs only: their lines as they always were
        del parsed["fields"]
    return {"id": line["id"], "index": line["index"], "answer": entry["answer"], **steps,
            "generation": generation, "parsed": parsed}


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
