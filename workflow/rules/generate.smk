rule generate_api:
    input:
        out("shards/{shard}.jsonl"),
        skip_lists(),
    output:
        answers=out("generated/{shard}.jsonl"),
        failed=out("generated/{shard}.failed.jsonl"),
    log:
        out("logs/generate_api/{shard}.log"),
    benchmark:
        out("benchmarks/generate_api/{shard}.tsv")
    conda:
        "../../envs/vqaflow.yaml"
    resources:
        **job_resources("generate"),
    params:
        journal=lambda wildcards: out(f"journal/{wildcards.shard}.jsonl"),
        prompts=prompt_params(),
        reformat=reformat_params(),
        retry_token=retry_token,
        api=api_params(),
        # read by the job, for the rate limiter's image tokens (a path: no rerun when it appears)
        preview_estimate=out("preview/estimate.json"),
    script:
        "../../scripts/generate_api.py"
