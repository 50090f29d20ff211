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
        from ..parquet_out import write_parquet

        # the records' own types (integers, lists, structs with their keys); a field whose
        # rows disagree is written as text and named on the terminal
        write_parquet(jsonl, dataset_path, PARQUET_ROW_GROUP)
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
        self.verify_failed: Counter = Counter()  # records the judge could not verify, by kind
        self.verify_transient = 0
        self.fell_back: dict[str, set] = {"generation": set(), "judge": set()}  # free-text shards
        self.reformat: Counter = Counter()
        self.diversity = Diversity()
        self.fields: Counter = Counter()  # records with each of the pipeline's output fields filled
        self.ok = self.qa_pairs = self.truncated = self.repaired = self.grounded = self.judged = 0
        self.copies = 0

    def add(self, record: dict, shard: str) -> None:
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
            self._paid(generation)
            if "reformat" in generation:
                self.reformat.update(("asked", generation["reformat"]["status"]))
        self.fields.update(name for name, value in self.pipeline.values(record).items() if value not in (None, "", []))
        qas = self.pipeline.qas(record, self.columns)
        self.qa_pairs += len(qas)
        for qa in qas:
            self.add_pair(qa)
            self.diversity.add(str(qa.get("question") or ""))
        if generation.get("free_text_fallback"):
            self.fell_back["generation"].add(shard)
        if "verify" in record:
            self.add_verify(record["verify"], shard, copy)

    def add_verify(self, verify: dict, shard: str, copy: bool = False) -> None:
        if not copy:  # a copy's verdicts were paid for once, by its original
            self.judge_tokens.update(verify.get("tokens", {}))  # failed judge requests' too
        if verify.get("free_text_fallback"):
            self.fell_back["judge"].add(shard)
        if verify.get("status") == "failed":
            self.verify_failed[verify.get("kind") or "error"] += 1
            self.verify_transient += bool(verify.get("transient"))

    def _paid(self, generation: dict) -> None:
        """Every request the record's answer took (a repair, a reformat): the Batch API's
        tokens apart; a reformat asks online."""
        paid = generation.get("paid", generation)
        batch = generation.get("backend") == "batch"
        reformat = generation.get("reformat") or {}
        online = batch and reformat.get("backend") != "batch"  # the reformat's tokens go online
        for name in ("prompt", "completion"):
            total = paid.get(f"{name}_tokens") or 0
            moved = (reformat.get(f"{name}_tokens") or 0) if online else 0
            self.tokens["batch" if batch else "online"][name] += total - moved
            self.tokens["online"][name] += moved

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
              columns: Columns, prices: Prices, duplicates: int = 0, structured: dict | None = None) -> dict:
    """Counts for stats.json: records, QA pairs, the records with each output field of a
    pipeline that has them (``fields``), parse statuses and issues, grounding,
    repairs, reformats, tokens and their cost, failures (the judge's too: a record it could not
    verify counts in ``failed_fraction``), what the quality steps found, and how structured
    output went (``structured``: the modes requested, ``requested`` and with the judge ``judge``)."""
    tally = _Tally(pipeline, columns)
    for path in refined_paths:
        for record in read_jsonl(path):
            tally.add(record, Path(path).stem)
    total = tally.ok + len(failed)
    tokens = tally.tokens
    unverified = sum(tally.verify_failed.values())
    stats = {
        "records_in": total,
        "records_ok": tally.ok,
        "records_failed": len(failed),
        "verify_failed": unverified,
        "failed_fraction": round((len(failed) + unverified) / total, 6) if total else 0.0,
        "qa_pairs": tally.qa_pairs,
        "parse_status": {s: tally.statuses.get(s, 0) for s in ("ok", "partial", "none")},
        "parse_issues": dict(sorted(tally.issues.items())),
        "truncated": tally.truncated,
        "repaired": tally.repaired,
        "reformat": {key: tally.reformat[key] for key in ("asked", "accepted", "rejected", "failed")},
        "failures_by_kind": dict(Counter(f["kind"] for f in failed)),
        "verify_failures_by_kind": dict(sorted(tally.verify_failed.items())),
        "failures_transient": sum(bool(f.get("transient")) for f in failed) + tally.verify_transient,
        "tokens": {
            "prompt": tokens["online"]["prompt"] + tokens["batch"]["prompt"],
            "completion": tokens["online"]["completion"] + tokens["batch"]["completion"],
            "batch_prompt": tokens["batch"]["prompt"],
            "batch_completion": tokens["batch"]["completion"],
        },
        "cost": prices.total(tokens),
        "quality": tally.quality_stats(prices, duplicates),
        "structured_output": _structured(structured or {}, tally.fell_back),
        "diversity": tally.diversity.stats(),
    }
    if pipeline.fields:  # records with each output field filled (caption, question, ...)
        stats["fields"] = {name: tally.fields[name] for name in pipeline.fields}
    if pipeline.want_article:
        stats["grounded_answers"] = tally.grounded
        stats["grounded_fraction"] = round(tally.grounded / tally.judged, 6) if tally.judged else 0.0
    return stats


def _structured(requested: dict, fell_back: dict[str, set]) -> dict:
    """The structured-output modes asked for and how many shards went on in free text
    because an endpoint rejected the JSON schema (``structured_output: auto``)."""
    stats = {"requested": requested.get("requested"), "fell_back_shards": len(fell_back["generation"])}
    if "judge" in requested:
        stats.update(judge_requested=requested["judge"], judge_fell_back_shards=len(fell_back["judge"]))
    return stats


def merge(
    refined_paths: list[str | Path], failed_paths: list[str | Path], dataset_path: str | Path,
    failed_out: str | Path, stats_path: str | Path, output_format: str, pipeline: Pipeline,
    columns: Columns, prices: Prices, duplicates: int = 0, structured: dict | None = None,
) -> dict:
    """Concatenate shards in input order into the dataset, failed.jsonl and stats.json
    (``duplicates``: records dedup left out before any request; ``structured``: the
    structured-output modes, see :func:`summarise`)."""
    dataset_path = Path(dataset_path)
    merged = dataset_path.with_name(dataset_path.name + ".merging.jsonl")
    _concat(refined_paths, merged)
    write_records_as(merged, dataset_path, output_format)
    _concat(failed_paths, Path(failed_out))
    failed = list(read_jsonl(failed_out))
    stats = summarise(refined_paths, failed, pipeline, columns, prices, duplicates, structured)
    Path(stats_path).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats
