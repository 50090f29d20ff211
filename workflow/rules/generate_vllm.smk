rule generate_vllm:
    input:
        out("shards/{shard}.jsonl"),
        skip_lists(),
    output:
        answers=out("generated/{shard}.jsonl"),
        failed=out("generated/{shard}.failed.jsonl"),
    log:
        out("logs/generate_vllm/{shard}.log"),
    benchmark:
        out("benchmarks/generate_vllm/{shard}.tsv")
    conda:
        "../../envs/vllm.yaml"
    resources:
        **job_resources("generate"),
    params:
        journal=lambda wildcards: out(f"journal/{wildcards.shard}.jsonl"),
        prompts=prompt_params(),
        reformat=reformat_params(),
        retry_token=retry_token,
        vllm=vllm_params(),
    script:
        "../../scripts/generate_vllm.py"
