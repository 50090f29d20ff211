"""The finish stage: one pass over the whole run between the per-shard stages (generate,
refine, verify) and everything that reads the dataset (merge, export, report, Hub).

Over every shard's finished records, in input order, it

- fills in the *copies*: records whose request an earlier record of the run makes already
  (``dedup.requests``; listed in ``request_duplicates.jsonl`` by :mod:`.copies` and never
  asked). A copy is its own input record with its original's answer, parse, flags, verdicts
  and generation, plus ``generation.duplicate_of``; a copy whose original failed fails with it
  (``final/copies.failed.jsonl``, the original's error), so the rerun that answers the
  original answers the copy;
- flags questions repeated on the same image anywhere in the dataset
  (:class:`~vqaflow.quality.questions.QuestionRepeats`).

It writes ``final/<shard>.jsonl`` per shard, which the later rules read. Memory: an 8-byte
hash per image, the questions of images with several records until their last one, and the
originals of copies still to come.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ..columns import Columns
from ..jsonl import encode, read_jsonl, write_jsonl
from ..pipelines import Pipeline
from ..quality.questions import QuestionRepeats
from .refine import input_record, output_fields


def image_value(record: dict, columns: Columns) -> str | None:
    """A record's image(s) as one string (the key of :class:`QuestionRepeats`), None without."""
    value = record.get(columns.image)
    if not value:
        return None
    return value if isinstance(value, str) else encode(value)


def read_copies(path: str | Path | None) -> dict[str, dict[str, str]]:
    """``request_duplicates.jsonl`` by shard: copy id -> original id."""
    copies: dict[str, dict[str, str]] = {}
    for entry in read_jsonl(path) if path else ():
        copies.setdefault(entry["shard"], {})[entry["id"]] = entry["duplicate_of"]
    return copies


class _Copies:
    """The originals of copies still to come (their output fields), and copies left without."""

    def __init__(self, copies: dict[str, dict[str, str]], pipeline: Pipeline, columns: Columns):
        self.by_shard = copies
        self.waiting = Counter(original for group in copies.values() for original in group.values())
        self.fields = output_fields(pipeline, columns)
        self.columns = columns
        self.originals: dict[str, dict] = {}
        self.image_of: dict[str, str | None] = {}  # an original's image value: its copies' too
        self.orphans: list[tuple[dict, str]] = []  # ({id, index} of a copy, its original's id)
        self.filled = 0

    def keep(self, record: dict) -> None:
        """Remember a record's output fields when copies of it are to come."""
        record_id = str(record[self.columns.id])
        if self.waiting.get(record_id):
            self.originals[record_id] = copy.deepcopy({k: record[k] for k in self.fields if k in record})

    def fill(self, line: dict, original_id: str) -> dict | None:
        """The copy's record, or None (noted as an orphan) when its original has no answer."""
        original = self.originals.get(original_id)
        self.waiting[original_id] -= 1
        if not self.waiting[original_id]:
            self.originals.pop(original_id, None)
        if original is None:
            self.orphans.append(({"id": line["id"], "index": line["index"]}, original_id))
            return None
        record = input_record(line, self.columns)
        record.update(original if not self.waiting[original_id] else copy.deepcopy(original))
        record["generation"] = {**record["generation"], "duplicate_of": original_id}
        self.filled += 1
        return record


def _read(path: str | Path) -> Iterator[tuple[dict, bytes]]:
    """The records of a JSONL file with their lines as read."""
    with Path(path).open("rb") as handle:
        for raw in handle:
            if raw.strip():
                yield json.loads(raw), raw


def _in_order(stage_path: str | Path, shard_path: str | Path, copies: _Copies,
              columns: Columns) -> Iterator[tuple[dict, str | None, bytes | None]]:
    """A shard's finished records with its copies filled in, in input order: each with the
    image value its questions are compared under (a copy: its original's, the same bytes) and
    its line as read (None for a copy)."""
    shard_copies = copies.by_shard.get(Path(shard_path).stem)
    records = _read(stage_path)
    if not shard_copies:
        yield from ((record, image_value(record, columns), raw) for record, raw in records)
        return
    pending = next(records, None)
    for line in read_jsonl(shard_path):
        if line["id"] in shard_copies:
            original = shard_copies[line["id"]]
            record = copies.fill(line, original)
            if record is not None:
                yield record, copies.image_of.get(original), None
        elif pending is not None and str(pending[0][columns.id]) == line["id"]:
            yield pending[0], image_value(pending[0], columns), pending[1]
            pending = next(records, None)
    if pending is not None:
        raise ValueError(f"{stage_path}: record {pending[0][columns.id]!r} is not in {shard_path} (in that order)")


def _image_values(stage_path: str | Path, shard_path: str | Path, copies: _Copies,
                  columns: Columns) -> Iterator[str | None]:
    """The image value of every record a shard will have, copies included (as their
    originals'), noting the originals' on the way."""
    for record in read_jsonl(stage_path):
        value = image_value(record, columns)
        if copies.waiting.get(str(record[columns.id])):
            copies.image_of[str(record[columns.id])] = value
        yield value
    for original in copies.by_shard.get(Path(shard_path).stem, {}).values():
        yield copies.image_of.get(original)


def _orphan_failures(orphans: list[tuple[dict, str]], failed_paths: list[str | Path]) -> list[dict]:
    """A failure for each copy whose original has no answer: the original's own failure."""
    wanted = {original for _, original in orphans}
    failures = {entry["id"]: entry for path in failed_paths for entry in read_jsonl(path) if entry["id"] in wanted}
    found = []
    for line, original in orphans:
        failure = failures.get(original) or {
            "error": f"its original {original} has no answer", "kind": "internal", "attempts": None,
            "transient": True}
        found.append({**failure, "id": line["id"], "index": line["index"], "duplicate_of": original})
    return found


def finish(stage_paths: list[str | Path], shard_paths: list[str | Path], final_paths: list[str | Path],
           failed_out: str | Path, generated_failed: list[str | Path], copies_path: str | Path | None,
           pipeline: Pipeline, columns: Columns) -> dict:
    """Write ``final_paths`` (one per shard, in the order of ``stage_paths`` and
    ``shard_paths``) and ``failed_out`` (copies whose original failed). Returns counts."""
    copies = _Copies(read_copies(copies_path), pipeline, columns)
    shards = list(zip(stage_paths, shard_paths, final_paths))
    repeats = QuestionRepeats(QuestionRepeats.count(
        value for stage, shard, _ in shards for value in _image_values(stage, shard, copies, columns)))
    records = 0
    for stage, shard, final in shards:
        with Path(final).open("wb") as out:
            for record, image, raw in _in_order(stage, shard, copies, columns):
                copies.keep(record)
                if repeats.flag(image, pipeline.qas(record, columns)) or raw is None:
                    raw = (encode(record) + "\n").encode()
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")  # unchanged: as read
                records += 1
    failures = _orphan_failures(copies.orphans, generated_failed)
    write_jsonl(failed_out, failures)
    return {"records": records, "copies_filled": copies.filled, "copies_failed": len(failures),
            **dict(sorted(repeats.flagged.items()))}
