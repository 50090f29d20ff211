"""Snakemake script: upload the Hub folder to the dataset repo ``hub.repo`` (token from HF_TOKEN)."""

import json

from vqaflow.logs import run_logged
from vqaflow.stages.hub import upload


def main() -> None:
    uploaded = upload(snakemake.input[0], snakemake.params.repo, snakemake.params.private)
    print(json.dumps(uploaded))
    with open(snakemake.output[0], "w", encoding="utf-8") as out:
        out.write(json.dumps(uploaded, indent=2) + "\n")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
