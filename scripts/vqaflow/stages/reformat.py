"""The reformat pass: every answer that is not ``ok`` after the repair gets one text-only
request (no image) carrying the raw answer and the pipeline's answer schema, asking a model to
copy — not rewrite — the article and the pairs into JSON. The model segments; the code
verifies (:mod:`vqaflow.quality.reformat_check`): an accepted reformat makes the record's parse
(``generation.reformatted: true``), a rejected one leaves the record as it was, with the issue
``reformat_rejected``. The requests go through the shard's request loop and journal with a
fingerprint of their own, so a rerun never asks one again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

from ..backends._factory import build_backend, sibling
from ..backends.base import Backend, GenerationTask, Sampling
from ..pipelines import Pipeline
from ..prompts import Prompt
from ..quality.parse import Parse
from ..quality.reformat_check import check_reformat
from ..requests import Request, ShardRequests, fingerprint, task_seed


@dataclass(frozen=True)
class ReformatSettings:
    """The ``reformat:`` section as the rules pass it: the generator's backend sections with
    ``reformat.api`` / ``reformat.vllm`` over them, key by key, and the model."""

    enabled: bool
    backend: str  # "api" (also with backend: batch: the reformat asks online) or "vllm"
    max_tokens: int
    api: dict | None = None
    vllm: dict | None = None
    share_engine: bool = False  # vllm with the generator's settings: its engine asks, text only


def reformat_backend(settings: ReformatSettings, generator: Backend, pipeline: Pipeline,
                     max_pixels: int) -> Backend:
    """The backend asking the reformats: greedy, ``max_tokens``, the pipeline's answer schema;
    on vLLM the generator's engine when the settings are the generator's."""
    sampling = Sampling(0.0, None, settings.max_tokens, pipeline.answer_schema())
    if settings.share_engine:
        return sibling(generator, sampling)
    return build_backend(settings.backend, sampling, max_pixels, api=settings.api, vllm=settings.vllm)


def reformat_task(record_id: str, raw: str, pipeline: Pipeline, seed: int | None) -> GenerationTask:
    """The text-only request asking to copy ``raw`` into the pipeline's JSON."""
    system, text = pipeline.reformat_prompt(raw)
    return GenerationTask(record_id, Prompt(system, (("user", text),), ()), task_seed(seed, record_id))


def _summary(generation: dict, status: str, reason: str | None) -> dict:
    """What ``generation.reformat`` tells about one answered reformat request."""
    summary = {"status": status, "model": generation.get("model"), "backend": generation.get("backend"),
               "prompt_tokens": generation.get("prompt_tokens") or 0,
               "completion_tokens": generation.get("completion_tokens") or 0}
    return {**summary, "reason": reason} if reason else summary


def _requests(tasks: list[GenerationTask], backend: Backend) -> dict[str, Request]:
    identity = backend.identity()
    return {task.id: Request(task, fingerprint(identity, task, [], 0)) for task in tasks}


def reformat_answers(requests: ShardRequests, answers: dict[str, dict], parses: dict[str, Parse],
                     pipeline: Pipeline, seed: int | None, backend: Backend, auto: bool = True) -> dict:
    """Ask ``backend`` to reformat every answer (by record id) whose parse in ``parses`` is not
    ``ok``; an accepted reformat replaces the parse, a rejected one adds ``reformat_rejected``
    to it (in place, with ``generation.reformat``). A request that failed leaves the record as
    it was (``generation.reformat.status: failed``; the next run asks again when the failure is
    transient). ``auto`` (``structured_output: auto``): free text where the endpoint rejects
    the schema. Returns counts: asked, accepted, rejected, failed, transient."""
    tasks = [reformat_task(rid, entry["answer"], pipeline, seed)
             for rid, entry in answers.items() if parses[rid].status != "ok"]
    asking = _requests(tasks, backend)
    replies, failures = requests.run(backend, asking, "reformat", rebuild=partial(_requests, tasks) if auto else None)
    counts = {"asked": len(asking), "accepted": 0, "rejected": 0, "failed": len(failures),
              "transient": sum(failure["transient"] for failure in failures.values())}
    for rid, reply in replies.items():
        entry, parsed = answers[rid], parses[rid]
        verdict = check_reformat(entry["answer"], reply["answer"], reply["generation"].get("finish_reason"),
                                 pipeline.want_article, parsed, entry["generation"].get("finish_reason") == "length")
        accepted = verdict.parse is not None
        parses[rid] = verdict.parse if accepted else replace(parsed, issues=(*parsed.issues, "reformat_rejected"))
        counts["accepted" if accepted else "rejected"] += 1
        summary = _summary(reply["generation"], "accepted" if accepted else "rejected", verdict.reason)
        answers[rid] = {**entry, "generation": {**entry["generation"], "reformatted": accepted, "reformat": summary}}
    for rid, failure in failures.items():
        summary = {"status": "failed", "reason": f"{failure['kind']}: {failure['error']}"}
        answers[rid] = {**answers[rid], "generation": {**answers[rid]["generation"], "reformat": summary}}
    return counts
