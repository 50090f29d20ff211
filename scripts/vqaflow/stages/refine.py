"""The refine stage: a shard's input records (shards/) and their generated answers, already
parsed (generated/), made into output records, with each pair's rule flags."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..columns import Columns
from ..inputs.image_refs import output_image_value
from ..jsonl import encode, read_jsonl, write_jsonl
from ..pipelines import Pipeline
from ..quality.filters import FilterSettings, flag_record, near_duplicate_questions
from ..quality.grounding import grounding


def refine_record(line: dict, pipeline: Pipeline, columns: Columns, filters: FilterSettings) -> dict:
    """The output record from a shard line joined with its generated line: the input record
    unchanged plus answer, parse (the generate stage's, with each pair's rule ``flags``) and
    generation."""
    answer, generation, parsed = line["answer"], line["generation"], line["parsed"]
    flags = flag_record(parsed["qas"], filters.language, filters.max_answer_words)
    qas = [{**qa, "flags": pair_flags} for qa, pair_flags in zip(parsed["qas"], flags)]
    record = dict(line["record"])
    if record.get(columns.id) is None:
        record[columns.id] = line["id"]
    if columns.image in record:  # embedded image bytes stay out of the dataset
        record[columns.image] = output_image_value(record[columns.image])
    record[columns.answer] = answer
    pipeline.store(record, columns, parsed["context"], qas)
    parse = {"status": parsed["status"], "issues": list(parsed["issues"]), "truncated": parsed["truncated"],
             "unread": list(parsed["unread"])}
    if pipeline.want_article:
        parse["grounded"] = grounding(parsed["qas"], parsed["context"] or "")
    record["parse"] = parse
    record["generation"] = generation
    return record


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
    into a JSONL of output records; questions that nearly repeat one of another record of
    the shard with the same image are flagged ``near_duplicate_question``."""
    rows = [refine_record(line, pipeline, columns, filters) for line in joined(shard_path, generated_path)]
    by_image: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        if row.get(columns.image):
            questions = [qa["question"] for qa in pipeline.qas(row, columns)]
            by_image.setdefault(encode(row[columns.image]), {})[str(row[columns.id])] = questions
    by_id = {str(row[columns.id]): row for row in rows}
    for group in by_image.values():
        if len(group) > 1:
            for row_id, indexes in near_duplicate_questions(group).items():
                row = by_id[row_id]
                for index in indexes:
                    pipeline.qas(row, columns)[index]["flags"].append("near_duplicate_question")
    return write_jsonl(output_path, rows)
