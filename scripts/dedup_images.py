"""Snakemake script: list records whose images duplicate an earlier record's, over the whole
input, before any request (they are not generated)."""

import json

from vqaflow.columns import Columns
from vqaflow.inputs.image_refs import image_refs
from vqaflow.inputs.readers import iter_records
from vqaflow.jsonl import write_jsonl
from vqaflow.logs import run_logged
from vqaflow.quality.image_dedup import find_duplicates


def main() -> None:
    columns = Columns.from_config(snakemake.params.columns)
    dedup = snakemake.params.dedup
    items = ((record_id, image_refs(record.get(columns.image)))
             for record_id, record in iter_records(snakemake.params.spec, columns, snakemake.params.image_root))
    unreadable, stats = [], {}
    duplicates = find_duplicates(items, dedup["images"], dedup["max_distance"], snakemake.params.image_root,
                                 workers=snakemake.threads, unreadable=unreadable, stats=stats)
    write_jsonl(snakemake.output[0], duplicates)
    print(json.dumps({**stats, "unreadable": unreadable[:20]}, indent=2))


if __name__ == "__main__":
    run_logged(snakemake.log[0], main)
