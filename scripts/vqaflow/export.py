"""Training-ready exports of the refined records: LLaVA/ShareGPT conversations and Parquet.

Both read the refined shards in input order, one record at a time, and apply the same
optional filters: drop records whose answer could not be parsed, drop answers not found in
the article (context_vqa), drop repeated questions within a record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import images
from .dataset import write_records_as
from .records import OutputKeys, read_jsonl


@dataclass(frozen=True)
class ExportFilters:
    """The ``export:`` section of the config."""

    drop_unparsed: bool = True
    drop_ungrounded: bool = False
    dedupe_questions: bool = True


@dataclass(frozen=True)
class Example:
    """One exported record: its images, article (context_vqa) and kept pairs."""

    id: str
    images: list[str]
    context: str | None
    qas: list[dict]


def select(record: dict, pipeline: str, keys: OutputKeys, image_key: str, image_root: str,
           filters: ExportFilters) -> Example | None:
    """The record as an :class:`Example` after the filters, or None when nothing is left."""
    parse = record["parse"]
    if filters.drop_unparsed and parse["status"] == "none":
        return None
    if pipeline == "context_vqa":
        context, qas = record[keys.refined]["context"], record[keys.refined]["qas"]
        if filters.drop_ungrounded:
            qas = [qa for qa, grounded in zip(qas, parse.get("grounded", [])) if grounded]
    else:
        context, qas = None, record[keys.qas]
    if filters.dedupe_questions:
        qas = _unique_questions(qas)
    if not qas:
        return None
    refs = record.get(image_key) or []
    refs = [refs] if isinstance(refs, str) else refs
    return Example(str(record[keys.id]), [images.resolve(ref, image_root) for ref in refs], context, qas)


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
    """A flat row for Parquet / ``datasets``: images by path, the article and the pairs."""
    return {"id": example.id, "images": example.images, "context": example.context,
            "questions": [qa["question"] for qa in example.qas],
            "answers": [qa["answer"] for qa in example.qas]}


def export(refined_paths: list[str | Path], conversations_path: str | Path, parquet_path: str | Path,
           pipeline: str, keys: OutputKeys, image_key: str, image_root: str,
           filters: ExportFilters) -> dict:
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
                example = select(record, pipeline, keys, image_key, image_root, filters)
                if example is None:
                    continue
                counts["records_out"] += 1
                counts["qa_pairs_out"] += len(example.qas)
                chats.write(json.dumps(conversation(example), ensure_ascii=False) + "\n")
                rows.write(json.dumps(table_row(example), ensure_ascii=False) + "\n")
    write_records_as(staged[conversations_path], conversations_path, "json")
    write_records_as(staged[parquet_path], parquet_path, "parquet")
    return counts
