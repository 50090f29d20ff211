"""Snakemake script: list records whose images duplicate an earlier record's, over the whole
input, before any request (they are not generated): the shards' image keys
(dedup/hashes/<shard>.jsonl, hashed by one job per shard) matched in input order."""

import json
import time

from vqaflow.jsonl import read_jsonl, write_jsonl
from vqaflow.logs import run_logged
from vqaflow.quality.image_dedup import DuplicateMatcher


def count_lines(path: str) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def main() -> None:
    started = time.perf_counter()
    expected = sum(map(count_lines, snakemake.input))  # sizes the perceptual index
    unreadable = []
    matcher = DuplicateMatcher(snakemake.params.mode, snakemake.params.max_distance, expected, unreadable)
    for path in snakemake.input:  # the shards in input order
        for line in read_jsonl(path):
            matcher.add(line)
    write_jsonl(snakemake.output[0], matcher.duplicates)
    stats = {**matcher.stats(), "shards": len(snakemake.input),
             "match_seconds": round(time.perf_counter() - started, 3), "unreadable": unreadable[:20]}
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
