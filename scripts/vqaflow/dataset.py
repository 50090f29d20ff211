"""Refinement of generated shards and the merge into the final dataset."""

from __future__ import annotations

import io
import itertools
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .columns import Columns
from .inputs.image_refs import output_image_value
from .jsonl import encode, read_jsonl, write_jsonl
from .pipelines import Pipeline
from .quality.filters import FilterSettings, flag_record, near_duplicate_questions
from .quality.grounding import grounding
from .quality.parse import parse_answer

PARQUET_ROW_GROUP = 5000  # rows held in memory while the Parquet dataset is written


def refine_record(line: dict, pipeline: Pipeline, columns: Columns, filters: FilterSettings) -> dict:
    """The output record: the input record unchanged plus answer, parse (with each pair's
    rule ``flags``) and generation."""
    answer, generation = line["answer"], line["generation"]
    parsed = parse_answer(answer, pipeline.want_article, generation.get("finish_reason"))
    flags = flag_record(parsed.qas, filters.language, filters.max_answer_words)
    qas = [{**qa, "flags": pair_flags} for qa, pair_flags in zip(parsed.qas, flags)]
    record = dict(line["record"])
    if record.get(columns.id) is None:
        record[columns.id] = line["id"]
    if columns.image in record:  # embedded image bytes stay out of the dataset
        record[columns.image] = output_image_value(record[columns.image])
    record[columns.answer] = answer
    pipeline.store(record, columns, parsed.context, qas)
    parse = {"status": parsed.status, "issues": list(parsed.issues), "truncated": parsed.truncated}
    if pipeline.want_article:
        parse["grounded"] = grounding(parsed.qas, parsed.context or "")
    record["parse"] = parse
    record["generation"] = generation
    return record


def refine_shard(generated_path: str | Path, output_path: str | Path, pipeline: Pipeline,
                 columns: Columns, filters: FilterSettings) -> int:
    """Refine every generated record of a shard into a JSONL of output records; questions
    that nearly repeat one of another record of the shard with the same image are flagged
    ``near_duplicate_question``."""
    rows = [refine_record(line, pipeline, columns, filters) for line in read_jsonl(generated_path)]
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


def _concat(paths: list[str | Path], target: Path) -> None:
    with target.open("wb") as out:
        for path in paths:
            with Path(path).open("rb") as handle:
                shutil.copyfileobj(handle, out)


def write_records_as(jsonl: Path, dataset_path: Path, output_format: str) -> None:
    """Turn a JSONL of records into ``dataset_path`` in ``output_format`` (the JSONL goes),
    in memory independent of the number of records."""
    if output_format == "jsonl":
        jsonl.replace(dataset_path)
    elif output_format == "json":
        with dataset_path.open("w", encoding="utf-8") as out:
            out.write("[")
            for position, record in enumerate(read_jsonl(jsonl)):
                out.write(",\n" if position else "\n")
                out.write(encode(record))
            out.write("\n]\n")
        jsonl.unlink()
    else:
        _write_parquet(jsonl, dataset_path)
        jsonl.unlink()


def _line_blocks(path: Path, lines: int = PARQUET_ROW_GROUP) -> Iterator[bytes]:
    """The file's non-blank lines, ``lines`` at a time (read, not memory-mapped: a mapped
    file's pages count in the process's memory)."""
    with path.open("rb") as handle:
        while block := [line for line in itertools.islice(handle, lines) if line.strip()]:
            yield b"".join(block)


def _write_parquet(jsonl: Path, dataset_path: Path, rows: int = PARQUET_ROW_GROUP) -> None:
    """The records as Parquet, one row group per ``rows`` records, in two
    passes over the JSONL: the schema of all records (each block's, merged with Polars'
    supertypes as when inferred from every record at once), then each block read with it and
    written as a row group. Memory: a block's records, whatever the number of blocks."""
    import polars as pl
    import pyarrow.parquet as pq

    schema = None
    for block in _line_blocks(jsonl, rows):
        found = pl.read_ndjson(io.BytesIO(block), infer_schema_length=None).clear()
        schema = found if schema is None else pl.concat([schema, found], how="diagonal_relaxed")
    if schema is None:
        pl.DataFrame().write_parquet(dataset_path)
        return
    writer = None
    try:
        for block in _line_blocks(jsonl, rows):
            table = pl.read_ndjson(io.BytesIO(block), schema=schema.schema).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(dataset_path, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=rows)
    finally:
        if writer is not None:
            writer.close()


@dataclass(frozen=True)
class Prices:
    """Dollars per million tokens (None: not priced) and the Batch API's share of them."""

    input_per_mtok: float | None
    output_per_mtok: float | None
    batch_discount: float

    def cost(self, tokens: dict[str, Counter]) -> float | None:
        """The cost of ``{"online"|"batch": Counter(prompt=..., completion=...)}``."""
        if self.input_per_mtok is None and self.output_per_mtok is None:
            return None
        total = 0.0
        for kind, counts in tokens.items():
            share = self.batch_discount if kind == "batch" else 1.0
            total += share * (counts["prompt"] * (self.input_per_mtok or 0)
                              + counts["completion"] * (self.output_per_mtok or 0)) / 1e6
        return round(total, 6)


def summarise(refined_paths: list[str | Path], failed: list[dict], pipeline: Pipeline,
              columns: Columns, prices: Prices, duplicates: int = 0) -> dict:
    """Counts for stats.json: records, QA pairs, parse statuses and issues, grounding,
    repairs, tokens and their cost, failures."""
    statuses: Counter = Counter()
    issues: Counter = Counter()
    tokens: dict[str, Counter] = {"online": Counter(), "batch": Counter()}
    quality: Counter = Counter()
    flagged: Counter = Counter()
    rejected: Counter = Counter()
    judge_tokens: Counter = Counter()
    ok = qa_pairs = truncated = repaired = grounded = judged = 0
    for path in refined_paths:
        for record in read_jsonl(path):
            ok += 1
            parse = record["parse"]
            statuses[parse["status"]] += 1
            issues.update(parse["issues"])
            truncated += parse["truncated"]
            flags = parse.get("grounded", [])
            grounded += sum(flags)
            judged += len(flags)
            generation = record["generation"]
            repaired += bool(generation.get("repaired"))
            if "duplicate_of" not in generation:  # a copy's answer was paid for once, by its original
                paid = generation.get("paid", generation)  # a repair: both requests were paid
                spent = tokens["batch" if generation.get("backend") == "batch" else "online"]
                spent["prompt"] += paid.get("prompt_tokens") or 0
                spent["completion"] += paid.get("completion_tokens") or 0
            qas = pipeline.qas(record, columns)
            qa_pairs += len(qas)
            for qa in qas:
                flagged.update(qa.get("flags", ()))
                quality["flagged"] += bool(qa.get("flags"))
                if "verdict" not in qa:
                    continue
                verdict = qa["verdict"]
                if verdict is None:
                    quality["unjudged"] += 1
                elif verdict["answerable"] and verdict["correct"]:
                    quality["accepted"] += 1
                else:
                    rejected["not_answerable" if not verdict["answerable"] else "incorrect"] += 1
            if "verify" in record:
                judge_tokens.update(record["verify"].get("tokens", {}))
    total = ok + len(failed)
    stats = {
        "records_in": total,
        "records_ok": ok,
        "records_failed": len(failed),
        "failed_fraction": round(len(failed) / total, 6) if total else 0.0,
        "qa_pairs": qa_pairs,
        "parse_status": {s: statuses.get(s, 0) for s in ("ok", "partial", "none")},
        "parse_issues": dict(sorted(issues.items())),
        "truncated": truncated,
        "repaired": repaired,
        "failures_by_kind": dict(Counter(f["kind"] for f in failed)),
        "failures_transient": sum(bool(f.get("transient")) for f in failed),
        "tokens": {
            "prompt": tokens["online"]["prompt"] + tokens["batch"]["prompt"],
            "completion": tokens["online"]["completion"] + tokens["batch"]["completion"],
            "batch_prompt": tokens["batch"]["prompt"],
            "batch_completion": tokens["batch"]["completion"],
        },
        "cost": prices.cost(tokens),
        "quality": {
            "pairs": qa_pairs,
            "flagged_pairs": quality["flagged"],
            "flags": dict(sorted(flagged.items())),
            "judged": quality["accepted"] + sum(rejected.values()),
            "accepted": quality["accepted"],
            "rejected": dict(sorted(rejected.items())),
            "unjudged": quality["unjudged"],
            "duplicates_skipped": duplicates,
            "judge_tokens": {"prompt": judge_tokens["prompt"], "completion": judge_tokens["completion"]},
            "judge_cost": prices.cost({"online": judge_tokens}),
        },
    }
    if pipeline.want_article:
        stats["grounded_answers"] = grounded
        stats["grounded_fraction"] = round(grounded / judged, 6) if judged else 0.0
    return stats


def merge(
    refined_paths: list[str | Path], failed_paths: list[str | Path], dataset_path: str | Path,
    failed_out: str | Path, stats_path: str | Path, output_format: str, pipeline: Pipeline,
    columns: Columns, prices: Prices, duplicates: int = 0,
) -> dict:
    """Concatenate shards in input order into the dataset, failed.jsonl and stats.json
    (``duplicates``: records dedup left out before any request)."""
    dataset_path = Path(dataset_path)
    merged = dataset_path.with_name(dataset_path.name + ".merging.jsonl")
    _concat(refined_paths, merged)
    write_records_as(merged, dataset_path, output_format)
    _concat(failed_paths, Path(failed_out))
    failed = list(read_jsonl(failed_out))
    stats = summarise(refined_paths, failed, pipeline, columns, prices, duplicates)
    Path(stats_path).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats
