"""Refinement of generated shards and the merge into the final dataset."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from . import refine
from .records import OutputKeys, read_jsonl

OUTPUT_FORMATS = ("jsonl", "json", "parquet")
encode_json = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per record
PARQUET_ROW_GROUP = 5000  # rows held in memory while the Parquet dataset is written


def refine_record(line: dict, pipeline: str, structured: bool, keys: OutputKeys) -> dict:
    """The output record: the input record unchanged plus answer, parse and generation."""
    answer = line["answer"]
    generation = line["generation"]
    parsed = refine.parse_answer(answer, want_article=pipeline == "context_vqa",
                                 finish_reason=generation.get("finish_reason"))
    record = dict(line["record"])
    record.setdefault(keys.id, line["id"])
    record[keys.answer] = answer
    parse = {"status": parsed.status, "issues": list(parsed.issues), "truncated": parsed.truncated}
    if pipeline == "context_vqa":
        context = parsed.context or ""
        record[keys.refined] = {"context": context, "qas": parsed.qas}
        parse["grounded"] = refine.grounding(parsed.qas, context)
    else:
        record[keys.qas] = parsed.qas
    record["parse"] = parse
    record["generation"] = generation
    return record


def refine_shard(
    generated_path: str | Path, output_path: str | Path, pipeline: str,
    structured: bool = False, keys: OutputKeys = OutputKeys(),
) -> int:
    """Refine every generated record of a shard into a JSONL of output records."""
    count = 0
    with Path(output_path).open("w", encoding="utf-8") as out:
        for line in read_jsonl(generated_path):
            out.write(encode_json(refine_record(line, pipeline, structured, keys)))
            out.write("\n")
            count += 1
    return count


def _concat(paths: list[str | Path], target: Path) -> None:
    with target.open("wb") as out:
        for path in paths:
            with Path(path).open("rb") as handle:
                shutil.copyfileobj(handle, out)


def write_records_as(jsonl: Path, dataset_path: Path, output_format: str) -> None:
    """Turn a JSONL of records into ``dataset_path`` in ``output_format`` (the JSONL goes)."""
    if output_format == "jsonl":
        jsonl.replace(dataset_path)
    elif output_format == "json":
        with dataset_path.open("w", encoding="utf-8") as out:
            out.write("[")
            for position, record in enumerate(read_jsonl(jsonl)):
                out.write(",\n" if position else "\n")
                out.write(json.dumps(record, ensure_ascii=False, indent=None))
            out.write("\n]\n")
        jsonl.unlink()
    else:
        import polars as pl

        if jsonl.stat().st_size:
            # streamed: the schema is inferred from every record, then rows flow to the file
            pl.scan_ndjson(jsonl, infer_schema_length=None, low_memory=True).sink_parquet(
                dataset_path, engine="streaming", row_group_size=PARQUET_ROW_GROUP
            )
        else:
            pl.DataFrame().write_parquet(dataset_path)
        jsonl.unlink()


def summarise(
    refined_paths: list[str | Path], failed: list[dict], pipeline: str, keys: OutputKeys = OutputKeys()
) -> dict:
    """Counts for stats.json: records, QA pairs, parse statuses, grounding, tokens, failures."""
    statuses: Counter = Counter()
    ok = qa_pairs = truncated = grounded = judged = prompt_tokens = completion_tokens = 0
    for path in refined_paths:
        for record in read_jsonl(path):
            ok += 1
            parse = record["parse"]
            statuses[parse["status"]] += 1
            truncated += parse["truncated"]
            flags = parse.get("grounded", [])
            grounded += sum(flags)
            judged += len(flags)
            generation = record["generation"]
            prompt_tokens += generation.get("prompt_tokens") or 0
            completion_tokens += generation.get("completion_tokens") or 0
            qas = record[keys.refined]["qas"] if pipeline == "context_vqa" else record[keys.qas]
            qa_pairs += len(qas)
    total = ok + len(failed)
    stats = {
        "records_in": total,
        "records_ok": ok,
        "records_failed": len(failed),
        "failed_fraction": round(len(failed) / total, 6) if total else 0.0,
        "qa_pairs": qa_pairs,
        "parse_status": {s: statuses.get(s, 0) for s in ("ok", "partial", "none")},
        "truncated": truncated,
        "failures_by_kind": dict(Counter(f["kind"] for f in failed)),
        "tokens": {"prompt": prompt_tokens, "completion": completion_tokens},
    }
    if pipeline == "context_vqa":
        stats["grounded_answers"] = grounded
        stats["grounded_fraction"] = round(grounded / judged, 6) if judged else 0.0
    return stats


def merge(
    refined_paths: list[str | Path], failed_paths: list[str | Path], dataset_path: str | Path,
    failed_out: str | Path, stats_path: str | Path, output_format: str, pipeline: str,
    keys: OutputKeys = OutputKeys(),
) -> dict:
    """Concatenate shards in input order into the dataset, failed.jsonl and stats.json."""
    dataset_path = Path(dataset_path)
    merged = dataset_path.with_name(dataset_path.name + ".merging.jsonl")
    _concat(refined_paths, merged)
    write_records_as(merged, dataset_path, output_format)
    _concat(failed_paths, Path(failed_out))
    failed = list(read_jsonl(failed_out))
    stats = summarise(refined_paths, failed, pipeline, keys)
    Path(stats_path).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats
