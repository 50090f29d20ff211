"""The blind check of the verify stage (``verify.blind``): each record's questions asked once
more, text only, and the pairs answered right flagged ``answerable_without_image``.

One request per record with pairs, through the shard's request loop beside the judge's (its
own fingerprint, journaled: a rerun asks nothing), on the judge's endpoint and model. It
carries the questions, numbered, and for pipelines with one the article; never an image and
never an answer. Pairs whose answer is yes or no are not asked (a guess is right half the
time). Which blind answer is right is decided by code (:func:`vqaflow.quality.blind.matches`),
not by a model. A blind answer that cannot be read flags nothing: the pair is counted as
unread. A record whose blind request failed keeps its pairs unflagged, gets ``blind.status:
failed`` and is listed in ``verify_failed.jsonl`` with ``check: blind``, like a failed judge
request; a transient failure is asked again by the next run of the same command.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ..backends.base import Backend, GenerationTask
from ..prompts import Prompt, PromptSettings
from ..quality import blind
from ..requests import Request, ShardRequests, fingerprint, task_seed


@dataclass(frozen=True)
class BlindItem:
    """One record to check blind: its request and which of its pairs it asks (positions)."""

    task: GenerationTask
    asked: tuple[int, ...]
    yes_no: int  # pairs not asked: their answer is yes or no


def blind_item(record_id: str, qas: list[dict], context: str | None, settings: PromptSettings) -> BlindItem | None:
    """The blind request of a record with these pairs, or None when it asks nothing."""
    asked = tuple(n for n, qa in enumerate(qas) if not blind.yes_no(str(qa.get("answer", ""))))
    if not asked:
        return None
    text = blind.blind_text(settings.pipeline.blind_prompt, [str(qas[n].get("question", "")) for n in asked], context)
    task = GenerationTask(record_id, Prompt(blind.BLIND_SYSTEM_PROMPT, (("user", text),), ()),
                          task_seed(settings.seed, record_id))
    return BlindItem(task, asked, len(qas) - len(asked))


def _requests(items: dict[str, BlindItem], max_pixels: int, backend: Backend) -> dict[str, Request]:
    identity = backend.identity()
    return {rid: Request(item.task, fingerprint(identity, item.task, [], max_pixels)) for rid, item in items.items()}


def ask_blind(items: dict[str, BlindItem], requests: ShardRequests, backend: Backend, max_pixels: int,
              auto: bool, shard: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """Every record's blind answer or failure, by record id (stored ones from the journal)."""
    rebuild = partial(_requests, items, max_pixels)
    asking = rebuild(backend)
    return requests.run(
        backend, asking, "blind",
        lambda plan: (f"{shard}: {len(asking)} records to check blind, {len(plan.answers)} stored, "
                      f"{len(plan.pending)} to ask"),
        rebuild if auto else None)


def apply_blind(item: BlindItem | None, qas: list[dict], result: dict | None, model: str) -> dict:
    """Put the blind answers on the record's pairs (``blind_answer``, None when unread; the
    flag when right) and return the record's ``blind`` summary. ``result``: the request's
    journal entry, or its failure (``error``, ``kind``: then nothing is flagged); None when
    the record asks nothing (``item`` None)."""
    if item is None or result is None:
        return {"model": model, "status": "skipped", "yes_no": len(qas)}
    if "answer" not in result:
        return {"model": model, "status": "failed", "error": result["error"], "kind": result["kind"],
                "transient": result["transient"]}
    generation = result["generation"]
    answers, issues = blind.read_answers(result["answer"], len(item.asked), generation.get("finish_reason") == "length")
    right = 0
    for position, answer in zip(item.asked, answers):
        qa = qas[position]
        qa["blind_answer"] = answer
        if answer is not None and blind.matches(answer, str(qa.get("answer", ""))):
            qa["flags"] = [*qa.get("flags", []), blind.FLAG]
            right += 1
    summary = {
        "model": generation.get("model") or model, "status": "ok", "asked": len(item.asked), "right": right,
        "unread": answers.count(None), "yes_no": item.yes_no, "issues": issues,
        "latency_s": generation.get("latency_s"),
        "tokens": {"prompt": generation.get("prompt_tokens") or 0, "completion": generation.get("completion_tokens") or 0},
    }
    if generation.get("free_text_fallback"):
        summary["free_text_fallback"] = True
    return summary
