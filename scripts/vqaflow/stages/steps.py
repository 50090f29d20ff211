"""A shard's records through a pipeline's steps (:class:`~vqaflow.pipelines.Step`), in order.

Each step builds every live record's requests from the earlier steps' results (one per record,
or several: a fan-out), asks them through the shard's request loop (journal first, then the
backend, answers journaled as they arrive) and collects each record's answers into the step's
result. A record fails alone: when its step cannot be built (``StepError``: kind ``prompt``, for
good; anything else: ``internal``, retried), when one of its requests fails (the failure of that request; the
next run asks only what the journal lacks) or when its answers cannot be collected. A record's
one request per step is keyed by its id, as it always was (same tasks, seeds and fingerprints);
each of several by :func:`request_key`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from ..backends.base import Backend, GenerationTask
from ..pipelines import ONE, Answer, Step, StepError, StepInput
from ..prompts import PromptError, PromptSettings, ask_prompt
from ..requests import Plan, Request, ShardRequests, content_key, fingerprint, task_seed

Prepared = tuple[GenerationTask, list[str]]  # a request's task and the digests of the images it sends


def request_key(record_id: str, sub: str) -> str:
    """The key (task id) of a record's request ``sub`` of a step: the record id for its one
    request, else a JSON pair (unique whatever the ids hold)."""
    return record_id if sub == ONE else json.dumps([record_id, sub], ensure_ascii=False)


def step_backend(backend: Backend, step: Step, settings: PromptSettings) -> Backend:
    """``backend`` asking with the step's JSON schema when ``structured_output`` is on."""
    if settings.structured_output and step.schema is not None:
        return backend.repairer(backend.sampling.max_tokens, step.schema)
    return backend


def _requests(tasks: dict[str, tuple[str, Prepared]], max_pixels: int, backend: Backend) -> dict[str, Request]:
    """The requests of ``tasks`` (request key -> (record id, prepared task)) for ``backend``."""
    identity = backend.identity()
    return {key: Request(task, fingerprint(identity, task, digests, max_pixels), None if key == rid else rid)
            for key, (rid, (task, digests)) in tasks.items()}


def _first_requests(prepared: dict[str, Prepared], identity: dict,
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


def _rebuilt_first(prepared: dict[str, Prepared], max_pixels: int, backend: Backend) -> dict[str, Request]:
    """The first step's requests for ``backend`` (``structured_output: auto``'s free text)."""
    return _first_requests(prepared, backend.identity(), max_pixels)[0]


def _worst(failures: list[tuple[str, dict]], step: Step) -> dict:
    """A record's failure from its failed requests of a step: a permanent one first."""
    sub, failure = min(failures, key=lambda item: item[1]["transient"])
    if sub == ONE:
        return failure
    return {**failure, "error": f"request {sub} of step {step.name}: {failure['error']}"}


@dataclass
class Chain:
    """A shard's records going through the steps: each one's first task, results, journal
    entries and failure. ``copies``: records whose first request an earlier record makes
    (answered by it, never asked); ``asked``: the last step's requests, ``asker`` its backend."""

    settings: PromptSettings
    requests: ShardRequests
    prepared: dict[str, Prepared] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: dict[str, dict[str, dict[str, dict]]] = field(default_factory=dict)
    failures: dict[str, dict] = field(default_factory=dict)
    copies: dict[str, str] = field(default_factory=dict)
    asked: dict[str, Request] = field(default_factory=dict)
    asker: Backend | None = None

    def inp(self, record_id: str, results: dict[str, Any] | None = None) -> StepInput:
        """What a step's functions see of a record (``results``: else its results so far)."""
        results = self.results[record_id] if results is None else results
        return StepInput(record_id, results, self.settings.pipeline_settings)

    def live(self) -> list[str]:
        """The records every step so far answered, in shard order (copies are answered by their
        originals)."""
        return [rid for rid in self.prepared if rid not in self.failures and rid not in self.copies]

    def fail(self, record_id: str, kind: str, error: str) -> None:
        self.failures[record_id] = self.requests.failure(record_id, error, kind)

    def run(self, backend: Backend, name: str, records: int, before: int) -> None:
        """Every step in order (``name``, ``records``, ``before``: the shard's name, its records
        and those failed before asking, for the log)."""
        auto = self.settings.structured_output == "auto"  # the schema, free text where it is rejected
        for n, step in enumerate(self.settings.pipeline.steps):
            asker = step_backend(backend, step, self.settings)
            if n == 0:
                self.results.update({rid: {} for rid in self.prepared})
                self.entries.update({rid: {} for rid in self.prepared})
                asking, self.copies = _first_requests(self.prepared, asker.identity(), self.settings.max_pixels)
                rebuild = partial(_rebuilt_first, self.prepared, self.settings.max_pixels)
                identical = f", {len(self.copies)} identical to another" if self.copies else ""
                describe = lambda plan: (  # noqa: E731
                    f"{name}: {records} records, {len(plan.answers)} stored, {len(plan.pending)} to ask"
                    f"{identical}, {before + len(plan.failures)} failed before asking")
            else:
                tasks = self._tasks(step, self.live())
                rebuild = partial(_requests, tasks, self.settings.max_pixels)
                asking = rebuild(asker)
                describe = partial(self._describe, name, step, len({rid for rid, _ in tasks.values()}))
            answers, failed = self.requests.run(asker, asking, step.name, describe, rebuild if auto else None)
            self._collect(step, asking, answers, failed)
            self.asked, self.asker = asking, asker

    @staticmethod
    def _describe(name: str, step: Step, records: int, plan: Plan) -> str:
        asking = len(plan.answers) + len(plan.failures) + len(plan.pending)
        return (f"{name} {step.name}: {asking} requests for {records} records, {len(plan.answers)} stored, "
                f"{len(plan.pending)} to ask")

    def _tasks(self, step: Step, records: list[str]) -> dict[str, tuple[str, Prepared]]:
        """The step's tasks by request key, with their records (a record whose step cannot be
        built fails here; one with no request gets its result from no answers)."""
        tasks: dict[str, tuple[str, Prepared]] = {}
        settings = self.settings
        for rid in records:
            try:
                asks = step.requests(self.inp(rid))
            except (StepError, PromptError) as err:
                self.fail(rid, "prompt", f"step {step.name}: {err}")
                continue
            except Exception as err:  # one record's bug must not stop its shard
                self.fail(rid, "internal", f"step {step.name}: {type(err).__name__}: {err}")
                continue
            first, digests = self.prepared[rid]
            if not asks:
                self._result(step, rid, {}, {})
            for sub, ask in asks.items():
                prompt = ask_prompt(ask, step.system_prompt, first.prompt.images)
                sent = digests if prompt.images else []
                key = request_key(rid, sub)
                seed_key = content_key(prompt, sent) if settings.dedup_requests else key
                tasks[key] = (rid, (GenerationTask(key, prompt, task_seed(settings.seed, seed_key)), sent))
        return tasks

    def _collect(self, step: Step, asking: dict[str, Request], answers: dict[str, dict],
                 failed: dict[str, dict]) -> None:
        """Each record's answers of the step into its result; a failed request fails its record."""
        got: dict[str, dict[str, dict]] = {}
        failures: dict[str, list[tuple[str, dict]]] = {}
        for key, request in asking.items():
            rid = request.record_id
            sub = ONE if key == rid else json.loads(key)[1]
            if key in failed:
                failures.setdefault(rid, []).append((sub, failed[key]))
            else:
                got.setdefault(rid, {})[sub] = answers[key]
        for rid, subs in got.items():
            if rid not in failures:
                self._result(step, rid, subs, {sub: Answer(entry["answer"], entry["generation"].get("finish_reason"))
                                               for sub, entry in subs.items()})
        for rid, failures_of in failures.items():
            self.failures[rid] = _worst(failures_of, step)

    def _result(self, step: Step, rid: str, entries: dict[str, dict], answers: dict[str, Answer]) -> None:
        try:
            self.results[rid][step.name] = step.result(self.inp(rid), answers)
        except Exception as err:  # one record's bug must not stop its shard
            self.fail(rid, "internal", f"step {step.name}: {type(err).__name__}: {err}")
            return
        self.entries[rid][step.name] = entries

    def first_task(self, record_id: str, step: Step, task: GenerationTask, digests: list[str]) -> None:
        """A record's prepared first task (its images left out when the first step sends none)."""
        images, digests = (task.prompt.images, digests) if step.images else ((), [])
        self.prepared[record_id] = (replace(task, prompt=replace(task.prompt, images=images)), digests)

    def steps_text(self, record_id: str) -> dict[str, Any]:
        """The raw answers of a record's steps but the answer step: a one-request step's text, a
        fan-out's texts by sub-key (the generated/ line's ``steps``)."""
        answer_step = self.settings.pipeline.answer_step
        shown = {}
        for step in self.settings.pipeline.steps:
            if step is answer_step:
                continue
            entries = self.entries[record_id][step.name]
            shown[step.name] = entries[ONE]["answer"] if step.single else {sub: e["answer"] for sub, e in entries.items()}
        return shown
