"""Snakemake script: fail the run when too many records failed (the dataset stays)."""

import json
import sys

from vqaflow.logs import run_logged


def main() -> None:
    stats = json.loads(open(snakemake.input[0], encoding="utf-8").read())
    fraction, limit = stats["failed_fraction"], snakemake.params.max_failed_fraction
    message = (
        f"{stats['records_failed']} of {stats['records_in']} records failed "
        f"({fraction:.1%}; max_failed_fraction is {limit:.1%}); see failed.jsonl"
    )
    if stats.get("failures_transient"):
        message += (
            f"; {stats['failures_transient']} of them may succeed on another attempt: "
            "run the same command again"
        )
    if fraction > limit:
        print(f"vqaflow: {message}", file=sys.__stderr__)
        raise SystemExit(f"too many failed records: {message}")
    with open(snakemake.output[0], "w", encoding="utf-8") as out:
        out.write(message + "\n")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
