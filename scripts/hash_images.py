"""Snakemake script: the dedup keys of one shard's images (results/<run>/dedup/hashes/<shard>.jsonl),
one line per record; dedup_images matches them over the whole input. One job per shard, so
decoding the images spreads over the cluster."""

import json
import time

from vqaflow.columns import Columns
from vqaflow.inputs.image_refs import image_refs
from vqaflow.jsonl import read_jsonl, write_jsonl
from vqaflow.logs import run_logged
from vqaflow.quality.image_dedup import hash_records


def main() -> None:
    columns = Columns.from_config(snakemake.params.columns)
    items = ((line["id"], image_refs(line["record"].get(columns.image)))
             for line in read_jsonl(snakemake.input[0]))
    timing, started = {}, time.perf_counter()
    lines = hash_records(items, snakemake.params.mode, snakemake.params.image_root,
                         workers=snakemake.threads, timing=timing)
    count = write_jsonl(snakemake.output[0], lines)
    elapsed = time.perf_counter() - started
    print(json.dumps({"records": count, "workers": snakemake.threads, "seconds": round(elapsed, 3), **timing}))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
