"""Training-ready exports of the refined records: LLaVA/ShareGPT conversations and Parquet.

Both read the refined shards in input order, one record at a time, and apply the same
optional filters: drop records whose answer could not be parsed, drop answers not found in
the article (context_vqa), drop repeated questions within a record. Image paths are written
as the dataset holds them (as the input gave them; relative to ``images.root`` for a folder
input), so the exports move with their images.

A pipeline without pairs exports what its ``training`` makes of its output fields (a caption:
the turn "Describe the image." answered by the caption); its flat table holds its fields
(``caption``) instead of the pairs' ``context``, ``questions`` and ``answers``. The pair filters
(flags, verdicts, repeated questions) apply to pairs only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..columns import Columns
from ..jsonl import encode, read_jsonl
from ..pipelines import Pipeline
from ..prompts import record_images
from ..quality import judge
from .merge import write_records_as


@dataclass(frozen=True)
class ExportFilters:
    """The ``export:`` section of the config."""

    drop_unparsed: bool
    drop_ungrounded: bool
    dedupe_questions: bool
    drop_flags: list[str]
    keep: str  # "all", or "verified": only pairs the judge accepted


@dataclass(frozen=True)
class Example:
    """One exported record: its images, article (context_vqa) and kept pairs (for a pipeline
    without pairs: its training turns, and its output ``fields``)."""

    id: str
    images: list[str]
    context: str | None
    qas: list[dict]
    fields: dict[str, Any] = field(default_factory=dict)


def select(record: dict, pipeline: Pipeline, columns: Columns, filters: ExportFilters) -> Example | None:
    """The record as an :class:`Example` after the filters, or None when nothing is left; its
    images as the dataset holds them (paths as the input gave them, never made absolute)."""
    parse = record["parse"]
    if filters.drop_unparsed and parse["status"] == "none":
        return None
    refs = record_images(record, columns)
    if not pipeline.pairs:
        values = pipeline.values(record)
        turns = pipeline.training(values)
        return Example(str(record[columns.id]), list(refs), None, turns, values) if turns else None
    context, qas = pipeline.context(record, columns), pipeline.qas(record, columns)
    if filters.drop_ungrounded and "grounded" in parse:
        qas = [qa for qa, grounded in zip(qas, parse["grounded"]) if grounded]
    if filters.drop_flags:
        qas = [qa for qa in qas if not set(qa.get("flags", ())) & set(filters.drop_flags)]
    if filters.keep == "verified":
        qas = [qa for qa in qas if judge.accepted(qa.get("verdict"))]
    if filters.dedupe_questions:
        qas = _unique_questions(qas)
    if not qas:
        return None
    pairs = [{"question": qa["question"], "answer": qa["answer"]} for qa in qas]
    return Example(str(record[columns.id]), list(refs), context, pairs)


def _unique_questions(qas: list[dict]) -> list[dict]:
    """The pairs without repeats of an earlier question (case ignored)."""
    seen: set[str] = set()
    kept = []
    for qa in qas:
        key = qa["question"].casefold()
        if key not in seen:
            seen.add(key)
            kept.append(qa)
    return kept


def conversation(example: Example) -> dict:
    """LLaVA/ShareGPT style: one ``<image>`` per image in the first human turn (after them
    the article, for context_vqa), then one human/gpt turn pair per QA."""
    turns = []
    for n, qa in enumerate(example.qas):
        question = qa["question"]
        if n == 0:
            lead = "".join("<image>\n" for _ in example.images)
            if example.context:
                lead += f"{example.context}\n\n"
            question = lead + question
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": qa["answer"]}]
    return {"id": example.id, "image": example.images, "conversations": turns}


def table_row(example: Example) -> dict:
    """A flat row for Parquet / ``datasets``: images by path, the article and the pairs (for a
    pipeline without pairs: its output fields)."""
    if example.fields:
        return {"id": example.id, "images": example.images, **example.fields}
    return {"id": example.id, "images": example.images, "context": example.context,
            "questions": [qa["question"] for qa in example.qas],
            "answers": [qa["answer"] for qa in example.qas]}


def export(refined_paths: list[str | Path], conversations_path: str | Path, parquet_path: str | Path,
           pipeline: Pipeline, columns: Columns, filters: ExportFilters) -> dict:
    """Write both exports; returns how many records and pairs went in and were dropped."""
    conversations_path, parquet_path = Path(conversations_path), Path(parquet_path)
    staged = {target: target.with_name(target.name + ".staging.jsonl")
              for target in (conversations_path, parquet_path)}
    counts = {"records_in": 0, "records_out": 0, "qa_pairs_out": 0}
    with staged[conversations_path].open("w", encoding="utf-8") as chats, \
            staged[parquet_path].open("w", encoding="utf-8") as rows:
        for path in refined_paths:
            for record in read_jsonl(path):
                counts["records_in"] += 1
                example = select(record, pipeline, columns, filters)
                if example is None:
                    continue
                counts["records_out"] += 1
                counts["qa_pairs_out"] += len(example.qas)
                chats.write(encode(conversation(example)) + "\n")
                rows.write(encode(table_row(example)) + "\n")
    write_records_as(staged[conversations_path], conversations_path, "json")
    write_records_as(staged[parquet_path], parquet_path, "parquet")
    return counts
