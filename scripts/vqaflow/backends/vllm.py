"""The vLLM backend: offline batched inference with vLLM's engine on the job's node.

The engine is built once per job and fed chunks of ``chunk_size`` records, so the journal
advances as each chunk finishes. Images are prepared with :mod:`vqaflow.images` (EXIF,
modes, ``max_pixels``) in a thread pool, the next chunk's while the engine runs the current
one, and passed as PIL images, one content part per image. Each record
samples with its own seed. A record whose image cannot be used, or that the engine rejects
(a prompt longer than ``max_model_len``), fails alone.
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

from .. import images
from ..prompts import chat_messages
from .base import GenerationTask, OnOutcome, OnRetry, Outcome, Sampling

PREPARE_THREADS = 4


@dataclass(frozen=True)
class VllmSettings:
    """The ``vllm:`` section of the config (resources excluded)."""

    model: str
    tensor_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    dtype: str
    download_dir: str | None
    max_pixels: int | None
    min_pixels: int | None
    chunk_size: int
    engine_args: dict


def image_part(picture) -> dict:
    """A prepared PIL image, or an http(s) URL for vLLM to fetch."""
    if isinstance(picture, str):
        return {"type": "image_url", "image_url": {"url": picture}}
    return {"type": "image_pil", "image_pil": picture}


class VllmBackend:
    """Generates answers with a vLLM engine built in this process."""

    schema_check = "never"  # structured outputs are built in: structured_output auto is true

    def __init__(self, settings: VllmSettings, sampling: Sampling, max_pixels: int):
        self.settings = settings
        self.sampling = sampling
        self.max_pixels = max_pixels
        self._engines: dict = {}  # the engine, built on first use; shared by copies (repairer, sibling)

    def repairer(self, max_tokens: int, json_schema: dict | None) -> VllmBackend:
        """Shares this backend's engine (built once per job)."""
        other = copy.copy(self)
        other.sampling = replace(self.sampling, max_tokens=max_tokens,
                                 json_schema=json_schema or self.sampling.json_schema)
        return other

    def free_text(self) -> VllmBackend:
        """Shares this backend's engine."""
        other = copy.copy(self)
        other.sampling = replace(self.sampling, json_schema=None)
        return other

    def identity(self) -> dict:
        settings = self.settings
        return {
            "backend": "vllm",
            "model": settings.model,
            "dtype": settings.dtype,
            "max_pixels": settings.max_pixels,
            "min_pixels": settings.min_pixels,
            "sampling": asdict(self.sampling),
        }

    def engine(self, images_per_prompt: int):
        """The vLLM engine for this job's settings."""
        from vllm import LLM

        settings = self.settings
        processor = {
            name: value for name, value in
            (("min_pixels", settings.min_pixels), ("max_pixels", settings.max_pixels)) if value
        }
        return LLM(
            model=settings.model,
            tensor_parallel_size=settings.tensor_parallel_size,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            max_model_len=settings.max_model_len,
            dtype=settings.dtype,
            download_dir=settings.download_dir,
            limit_mm_per_prompt={"image": max(1, images_per_prompt)},
            mm_processor_kwargs=processor or None,
            **settings.engine_args,
        )

    def _params(self, task: GenerationTask):
        from vllm import SamplingParams

        options = {"max_tokens": self.sampling.max_tokens, "seed": task.seed}
        if self.sampling.temperature is not None:
            options["temperature"] = self.sampling.temperature
        if self.sampling.top_p is not None:
            options["top_p"] = self.sampling.top_p
        if self.sampling.json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            options["structured_outputs"] = StructuredOutputsParams(json=self.sampling.json_schema)
        return SamplingParams(**options)

    def run(self, tasks: list[GenerationTask], on_outcome: OnOutcome, on_retry: OnRetry | None = None) -> None:
        # one engine call per chunk: nothing to retry
        if "llm" not in self._engines:  # built on first use, sized for the first tasks' images
            self._engines["llm"] = self.engine(max((len(task.prompt.images) for task in tasks), default=1))
        size = self.settings.chunk_size
        chunks = [tasks[start:start + size] for start in range(0, len(tasks), size)]
        with ThreadPoolExecutor(PREPARE_THREADS) as pool:
            upcoming = pool.submit(self._prepare_chunk, pool, chunks[0]) if chunks else None
            for index in range(len(chunks)):
                ready, failures = upcoming.result()
                if index + 1 < len(chunks):  # the next chunk's images decode while this one runs
                    upcoming = pool.submit(self._prepare_chunk, pool, chunks[index + 1])
                for outcome in failures:
                    on_outcome(outcome)
                if ready:
                    self._generate(self._engines["llm"], ready, on_outcome)

    def _prepare_chunk(self, pool: ThreadPoolExecutor, chunk: list[GenerationTask]):
        """The chunk's conversations (images decoded in parallel) and its image failures."""
        ready, failures = [], []
        for task, prepared in zip(chunk, pool.map(self._pictures, chunk)):
            if isinstance(prepared, images.ImageError):
                failures.append(Outcome(task.id, error=str(prepared), error_kind="image"))
            else:
                ready.append((task, chat_messages(task.prompt, [image_part(p) for p in prepared])))
        return ready, failures

    def _pictures(self, task: GenerationTask) -> list | images.ImageError:
        try:
            return [ref if images.is_url(ref) else images.load(ref, self.max_pixels) for ref in task.prompt.images]
        except images.ImageError as err:
            return err

    def _generate(self, llm, ready: list[tuple[GenerationTask, list[dict]]], on_outcome: OnOutcome) -> None:
        """One chunk in one engine call; if the engine rejects the chunk, each record alone."""
        from vllm.exceptions import VLLMClientError

        started = time.monotonic()
        try:
            outputs = llm.chat([c for _, c in ready], [self._params(t) for t, _ in ready], use_tqdm=False)
        except (VLLMClientError, ValueError) as err:  # a request the engine refuses (too long, ...)
            if len(ready) == 1:
                on_outcome(Outcome(ready[0][0].id, error=f"rejected by vLLM: {err}", error_kind="rejected",
                                   generation={"attempts": 1}))
            else:
                for item in ready:
                    self._generate(llm, [item], on_outcome)
            return
        latency = round(time.monotonic() - started, 3)
        for (task, _), output in zip(ready, outputs):
            on_outcome(self._outcome(task, output, latency))

    def _outcome(self, task: GenerationTask, output, latency: float) -> Outcome:
        completion = output.outputs[0]
        generation = {
            "backend": "vllm",
            "model": self.settings.model,
            "finish_reason": completion.finish_reason,
            "prompt_tokens": len(output.prompt_token_ids or []),
            "completion_tokens": len(completion.token_ids),
            "latency_s": latency,
            "attempts": 1,
        }
        if not completion.text.strip():
            return Outcome(task.id, error="the model returned an empty answer", error_kind="empty_answer",
                           generation=generation)
        return Outcome(task.id, answer=completion.text, generation=generation)
