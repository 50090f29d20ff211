"""Snakemake script: the request key of each record of one shard (requests/keys/<shard>.jsonl),
for finding identical requests across the run before any is asked."""

from vqaflow.jsonl import write_jsonl
from vqaflow.logs import run_logged
from vqaflow.settings import prompt_settings
from vqaflow.stages.copies import request_keys


def main() -> None:
    count = write_jsonl(snakemake.output[0],
                        request_keys(snakemake.input[0], prompt_settings(snakemake.params.prompts)))
    print(f"{snakemake.input[0]}: {count} request keys")


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
