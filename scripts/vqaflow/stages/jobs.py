"""Running a stage as a Snakemake job: the rule's params turned into settings and a backend,
the stage run, and a retry token left when failures another attempt may fix remain."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..backends._factory import build_backend, sibling
from ..backends.base import Backend, Sampling
from ..jsonl import read_jsonl
from ..quality.blind import ANSWER_SCHEMA
from ..quality.judge import VERDICT_SCHEMA
from ..settings import prompt_settings
from .generate import generate_shard
from .reformat import ReformatSettings
from .repair import RepairSettings
from .verify import verify_shard


def sampling(prompts: dict) -> Sampling:
    """The sampling settings from the rules' ``prompts`` params (each pipeline step adds its
    JSON schema with ``structured_output``)."""
    generation = prompts["generation"]
    return Sampling(generation["temperature"], generation["top_p"], generation["max_tokens"])


def retry_token_path(journal_path: str | Path, stage: str) -> Path:
    """Where a shard's retry token for ``stage`` lives: beside its journal, outside the job's
    outputs (which Snakemake deletes before a job runs)."""
    return Path(journal_path).with_suffix(f".{stage}.retry")


def _stamp_retry(journal_path: str | Path, stage: str, summary: dict) -> None:
    if summary["transient"] or summary.get("reformat", {}).get("transient"):
        retry_token_path(journal_path, stage).write_text(f"{time.time_ns():x}\n", encoding="utf-8")


def generate_with(smk, make_backend: Callable[[Sampling, int], Backend]) -> dict:
    """Run a generate rule: build the backend and generate the shard (with the reformat pass
    of the ``reformat`` param). When failures that another attempt may fix remain (a
    reformat's included), a new retry token (a rule param) makes the next run of
    the same command run the shard again; otherwise the token stays as the job saw it."""
    prompts = smk.params.prompts
    settings = prompt_settings(prompts)
    skip = frozenset(entry["id"] for path in smk.input[1:] for entry in read_jsonl(path))
    summary = generate_shard(
        smk.input[0],
        smk.output.answers,
        smk.output.failed,
        smk.params.journal,
        settings,
        make_backend(sampling(prompts), settings.max_pixels),
        RepairSettings(**prompts["repair"]),
        prompts["retry_rejected"],
        skip,
        ReformatSettings(**smk.params.reformat),
    )
    _stamp_retry(smk.params.journal, "generate", summary)
    return summary


def judge_backend(judge: dict, max_pixels: int) -> Backend:
    """The judge's backend: vLLM when generation runs on vLLM, else the online API; asking
    with the verdict schema unless ``structured_output`` is false."""
    sampling = Sampling(0.0, None, judge["max_tokens"], VERDICT_SCHEMA if judge["structured_output"] else None)
    return build_backend(judge["backend"], sampling, max_pixels, api=judge["api"], vllm=judge["vllm"])


def verify_backends(judge: dict, max_pixels: int) -> tuple[Backend | None, Backend | None]:
    """The judge's backend (None with ``verify.enabled: false``) and the blind check's (None
    without ``verify.blind``): one endpoint and model (one vLLM engine), each asking with its
    own schema unless ``structured_output`` is false."""
    judging = judge_backend(judge, max_pixels) if judge["enabled"] else None
    if not judge["blind"]:
        return judging, None
    sampling = Sampling(0.0, None, judge["max_tokens"], ANSWER_SCHEMA if judge["structured_output"] else None)
    if judging is not None:
        return judging, sibling(judging, sampling)
    return None, build_backend(judge["backend"], sampling, max_pixels, api=judge["api"], vllm=judge["vllm"])


def verify_with(smk) -> dict:
    """Run a verify rule: judge every record of the shard and check it blind, as configured."""
    settings = prompt_settings(smk.params.prompts)
    judge = smk.params.judge
    judging, blind = verify_backends(judge, settings.max_pixels)
    summary = verify_shard(
        smk.input.refined, smk.input.shard, smk.output.verified, smk.output.failed, smk.params.journal,
        settings, judging, judge["prompt"] or settings.pipeline.judge_prompt,
        judge["model"], smk.params.prompts["retry_rejected"], judge["structured_output"] == "auto", blind,
    )
    _stamp_retry(smk.params.journal, "verify", summary)
    return summary
