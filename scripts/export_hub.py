"""Snakemake script: the run as a Hugging Face Hub dataset folder (Parquet parts with images, a card)."""

import json

from vqaflow.logs import run_logged
from vqaflow.settings import prompt_settings
from vqaflow.stages.export import ExportFilters
from vqaflow.stages.hub import build_folder
from vqaflow.stages.hub_card import CardSettings


def main() -> None:
    with open(snakemake.input.stats, encoding="utf-8") as handle:
        stats = json.load(handle)
    found = build_folder(
        snakemake.output[0],
        list(snakemake.input.records),
        stats,
        snakemake.params.input_spec,
        prompt_settings(snakemake.params.prompts),
        ExportFilters(**snakemake.params.filters),
        CardSettings(**snakemake.params.card),
        int(snakemake.params.max_part_mb * 2**20),
    )
    print(json.dumps({"records": found.records, "pairs": found.pairs}))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
