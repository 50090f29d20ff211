"""The refine stage: a shard's input records (shards/) and their generated answers, already
parsed (generated/), made into output records, with each pair's rule flags. Flags that need
the whole dataset (questions repeated across records) come later, from the finish stage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..columns import Columns
from ..inputs.image_refs import output_image_value
from ..jsonl import read_jsonl, write_jsonl
from ..pipelines import Pipeline
from ..quality.filters import FilterSettings, flag_record
from ..quality.grounding import grounding


def refine_record(line: dict, pipeline: Pipeline, columns: Columns, filters: FilterSettings) -> dict:
    """The output record from a shard line joined with its generated line: the input record
    unchanged plus answer, the pipeline's outputs (its pairs, with each pair's rule ``flags``,
    and its fields), parse (the generate stage's) and generation."""
    answer, generation, parsed = line["answer"], line["generation"], line["parsed"]
    flags = flag_record(parsed["qas"], filters.language, filters.max_answer_words)
    qas = [{**qa, "flags": pair_flags} for qa, pair_flags in zip(parsed["qas"], flags)]
    record = input_record(line, columns)
    record[columns.answer] = answer
    pipeline.store(record, columns, parsed["context"], qas, parsed.get("fields"))
    parse = {"status": parsed["status"], "issues": list(parsed["issues"]), "truncated": parsed["truncated"],
             "unread": list(parsed["unread"])}
    if pipeline.want_article:
        parse["grounded"] = grounding(parsed["qas"], parsed["context"] or "")
    record["parse"] = parse
    record["generation"] = generation
    return record


def input_record(line: dict, columns: Columns) -> dict:
    """A shard line's input record as the output record starts: its id filled in, embedded
    image bytes replaced by their digest (they stay out of the dataset)."""
    record = dict(line["record"])
    if record.get(columns.id) is None:
        record[columns.id] = line["id"]
    if columns.image in record:
        record[columns.image] = output_image_value(record[columns.image])
    return record


def output_fields(pipeline: Pipeline, columns: Columns) -> tuple[str, ...]:
    """The fields the stages add to an input record (the rest is the input's own)."""
    return (columns.answer, *pipeline.output_fields(columns), "parse", "generation", "verify")


def joined(shard_path: str | Path, generated_path: str | Path) -> Iterator[dict]:
    """Each generated line joined with its shard line (both files in shard order; the
    generated one lacks the records that failed or were skipped), one pair at a time."""
    shard = read_jsonl(shard_path)
    for generated in read_jsonl(generated_path):
        for line in shard:
            if line["id"] == generated["id"]:
                yield {**line, **generated}
                break
        else:
            raise ValueError(f"{generated_path}: record {generated['id']!r} is not in {shard_path} (in that order)")


def refine_shard(shard_path: str | Path, generated_path: str | Path, output_path: str | Path, pipeline: Pipeline,
                 columns: Columns, filters: FilterSettings) -> int:
    """Refine every generated record of a shard (its generated/ line beside its shards/ line)
    into a JSONL of output records."""
    rows = (refine_record(line, pipeline, columns, filters) for line in joined(shard_path, generated_path))
    return write_jsonl(output_path, rows)
