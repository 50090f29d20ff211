"""Snakemake script: fail the run when too many records failed (the dataset stays)."""

import json
import sys

from vqaflow.config_check import gate_message
from vqaflow.logs import run_logged


def main() -> None:
    stats = json.loads(open(snakemake.input.stats, encoding="utf-8").read())
    limit = snakemake.params.max_failed_fraction
    if stats["failed_fraction"] > limit:
        verify_failed = snakemake.input.verify_failed[0] if snakemake.input.verify_failed else None
        message = gate_message(stats, limit, snakemake.input.dataset, snakemake.input.failed, verify_failed)
        print(f"vqaflow: {message}", file=sys.__stderr__)
        raise SystemExit("too many failed records (max_failed_fraction)")
    with open(snakemake.output[0], "w", encoding="utf-8") as out:
        out.write(
            f"{stats['records_failed'] + stats.get('verify_failed', 0)} of {stats['records_in']} records failed "
            f"({stats['failed_fraction']:.1%}; max_failed_fraction is {limit:.1%}); see {snakemake.input.failed}\n"
        )


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
