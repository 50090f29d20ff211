"""Snakemake script: the records of the run whose request an earlier record makes already
(request_duplicates.jsonl): they are not asked, the finish stage fills them in."""

from vqaflow.jsonl import read_jsonl, write_jsonl
from vqaflow.logs import run_logged
from vqaflow.stages.copies import match_requests


def main() -> None:
    skip = frozenset(entry["id"] for path in snakemake.input.skip for entry in read_jsonl(path))
    lines = (line for path in snakemake.input.request_keys for line in read_jsonl(path))  # shards in input order
    count = write_jsonl(snakemake.output[0], match_requests(lines, skip))
    print(f"{count} records make the same request as an earlier record: asked once")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
