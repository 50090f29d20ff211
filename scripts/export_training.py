"""Snakemake script: export the refined records as LLaVA conversations and a Parquet table."""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)

from vqaflow.export import ExportFilters, export
from vqaflow.logs import run_logged
from vqaflow.settings import output_keys


def main() -> None:
    counts = export(
        list(snakemake.input),
        snakemake.output.conversations,
        snakemake.output.table,
        snakemake.params.pipeline,
        output_keys({"keys": snakemake.params.columns}),
        snakemake.params.columns["image"],
        snakemake.params.image_root,
        ExportFilters(**snakemake.params.filters),
    )
    print(json.dumps(counts))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
