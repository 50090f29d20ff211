"""The merge stage: the refined shards concatenated into the dataset (JSONL, JSON or Parquet),
failed.jsonl and stats.json."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from ..columns import Columns
from ..costs import Prices
from ..jsonl import encode, read_jsonl
from ..pipelines import Pipeline
from ..quality import judge
from ..quality.questions import Diversity

PARQUET_ROW_GROUP = 5000  # rows held in memory while the Parquet dataset is written


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
                out.write(encode(record))
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


class _Tally:
    """What stats.json counts, one refined record at a time."""

    def __init__(self, pipeline: Pipeline, columns: Columns):
        self.pipeline, self.columns = pipeline, columns
        self.statuses: Counter = Counter()
        self.issues: Counter = Counter()
        self.tokens: dict[str, Counter] = {"online": Counter(), "batch": Counter()}
        self.quality: Counter = Counter()
        self.flagged: Counter = Counter()
        self.rejected: Counter = Counter()
        self.judge_tokens: Counter = Counter()
        self.diversity = Diversity()
        self.ok = self.qa_pairs = self.truncated = self.repaired = self.grounded = self.judged = 0
        self.copies = 0

    def add(self, record: dict) -> None:
        self.ok += 1
        parse = record["parse"]
        self.statuses[parse["status"]] += 1
        self.issues.update(parse["issues"])
        self.truncated += parse["truncated"]
        flags = parse.get("grounded", [])
        self.grounded += sum(flags)
        self.judged += len(flags)
        generation = record["generation"]
        self.repaired += bool(generation.get("repaired"))
        copy = "duplicate_of" in generation  # a copy's answer (and verdicts) were paid for once, by its original
        self.copies += copy
        if not copy:
            paid = generation.get("paid", generation)  # several requests (a repair): all were paid
            spent = self.tokens["batch" if generation.get("backend") == "batch" else "online"]
            spent["prompt"] += paid.get("prompt_tokens") or 0
            spent["completion"] += paid.get("completion_tokens") or 0
        qas = self.pipeline.qas(record, self.columns)
        self.qa_pairs += len(qas)
        for qa in qas:
            self.add_pair(qa)
            self.diversity.add(str(qa.get("question") or ""))
        if "verify" in record and not copy:
            self.judge_tokens.update(record["verify"].get("tokens", {}))

    def add_pair(self, qa: dict) -> None:
        self.flagged.update(qa.get("flags", ()))
        self.quality["flagged"] += bool(qa.get("flags"))
        if "verdict" not in qa:
            return
        verdict = qa["verdict"]
        if verdict is None:
            self.quality["unjudged"] += 1
        elif judge.accepted(verdict):
            self.quality["accepted"] += 1
        else:
            self.rejected["not_answerable" if not verdict["answerable"] else "incorrect"] += 1

    def quality_stats(self, prices: Prices, duplicates: int) -> dict:
        return {
            "pairs": self.qa_pairs,
            "flagged_pairs": self.quality["flagged"],
            "flags": dict(sorted(self.flagged.items())),
            "judged": self.quality["accepted"] + sum(self.rejected.values()),
            "accepted": self.quality["accepted"],
            "rejected": dict(sorted(self.rejected.items())),
            "unjudged": self.quality["unjudged"],
            "duplicates_skipped": duplicates,
            "identical_requests": self.copies,
            "judge_tokens": {"prompt": self.judge_tokens["prompt"], "completion": self.judge_tokens["completion"]},
            "judge_cost": prices.total({"online": self.judge_tokens}),
        }


def summarise(refined_paths: list[str | Path], failed: list[dict], pipeline: Pipeline,
              columns: Columns, prices: Prices, duplicates: int = 0) -> dict:
    """Counts for stats.json: records, QA pairs, parse statuses and issues, grounding,
    repairs, tokens and their cost, failures, and what the quality steps found."""
    tally = _Tally(pipeline, columns)
    for path in refined_paths:
        for record in read_jsonl(path):
            tally.add(record)
    total = tally.ok + len(failed)
    tokens = tally.tokens
    stats = {
        "records_in": total,
        "records_ok": tally.ok,
        "records_failed": len(failed),
        "failed_fraction": round(len(failed) / total, 6) if total else 0.0,
        "qa_pairs": tally.qa_pairs,
        "parse_status": {s: tally.statuses.get(s, 0) for s in ("ok", "partial", "none")},
        "parse_issues": dict(sorted(tally.issues.items())),
        "truncated": tally.truncated,
        "repaired": tally.repaired,
        "failures_by_kind": dict(Counter(f["kind"] for f in failed)),
        "failures_transient": sum(bool(f.get("transient")) for f in failed),
        "tokens": {
            "prompt": tokens["online"]["prompt"] + tokens["batch"]["prompt"],
            "completion": tokens["online"]["completion"] + tokens["batch"]["completion"],
            "batch_prompt": tokens["batch"]["prompt"],
            "batch_completion": tokens["batch"]["completion"],
        },
        "cost": prices.total(tokens),
        "quality": tally.quality_stats(prices, duplicates),
        "diversity": tally.diversity.stats(),
    }
    if pipeline.want_article:
        stats["grounded_answers"] = tally.grounded
        stats["grounded_fraction"] = round(tally.grounded / tally.judged, 6) if tally.judged else 0.0
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
