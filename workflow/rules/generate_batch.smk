# backend: batch. A local rule: a batch may take up to its completion window (hours) and
# the job only polls, so it must not hold a cluster slot. The state file (params, not an
# output: it must outlive a failed or killed job) records the submitted batches, so a
# rerun re-attaches to them instead of paying for the same lines again.


rule generate_batch:
    input:
        out("shards/{shard}.jsonl"),
        skip_lists(),
    output:
        answers=out("generated/{shard}.jsonl"),
        failed=out("generated/{shard}.failed.jsonl"),
    log:
        out("logs/generate_batch/{shard}.log"),
    benchmark:
        out("benchmarks/generate_batch/{shard}.tsv")
    localrule: True
    conda:
        "../../envs/vqaflow.yaml"
    params:
        journal=lambda wildcards: out(f"journal/{wildcards.shard}.jsonl"),
        state=lambda wildcards: out(f"batches/{wildcards.shard}.json"),
        prompts=prompt_params(),
        reformat=reformat_params(),
        retry_token=retry_token,
        api=api_params(),
        batch=batch_params(),
    script:
        "../../scripts/generate_batch.py"
