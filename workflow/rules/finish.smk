rule finish_records:
    input:
        records=stage_records(),
        shards=expand(out("shards/{shard}.jsonl"), shard=SHARDS),
        failed=expand(out("generated/{shard}.failed.jsonl"), shard=SHARDS),
        copies=request_duplicates_input(),
    output:
        records=expand(out("final/{shard}.jsonl"), shard=SHARDS),
        failed=out("final/copies.failed.jsonl"),
    log:
        out("logs/finish_records.log"),
    conda:
        "../../envs/vqaflow.yaml"
    params:
        pipeline=config["pipeline"],
        columns=config["keys"],
    script:
        "../../scripts/finish_records.py"
