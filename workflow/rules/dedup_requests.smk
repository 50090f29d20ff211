# Identical requests across the run (dedup.requests), before any request: each shard's request
# keys (building a request digests its images: one job per shard), then one small job matching
# them in input order. Generation skips the copies; finish_records fills them in.


rule request_keys:
    input:
        out("shards/{shard}.jsonl"),
    output:
        out("requests/keys/{shard}.jsonl"),
    log:
        out("logs/request_keys/{shard}.log"),
    group:
        "dedup"  # seconds a shard: --group-components dedup=N puts N shards in one cluster job
    conda:
        "../../envs/vqaflow.yaml"
    params:
        prompts=prompt_params(),
    script:
        "../../scripts/request_keys.py"


rule match_requests:
    input:
        request_keys=expand(out("requests/keys/{shard}.jsonl"), shard=SHARDS),
        skip=duplicates_input(),
    output:
        out("request_duplicates.jsonl"),
    log:
        out("logs/match_requests.log"),
    conda:
        "../../envs/vqaflow.yaml"
    script:
        "../../scripts/match_requests.py"
