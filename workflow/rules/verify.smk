rule verify_qas:
    input:
        refined=out("refined/{shard}.jsonl"),
        shard=out("shards/{shard}.jsonl"),
    output:
        verified=out("verified/{shard}.jsonl"),
        failed=out("verified/{shard}.failed.jsonl"),
    log:
        out("logs/verify_qas/{shard}.log"),
    benchmark:
        out("benchmarks/verify_qas/{shard}.tsv")
    conda:
        "../../envs/vllm.yaml"
        if config["backend"] == "vllm"
        else "../../envs/vqaflow.yaml"
    resources:
        **job_resources("judge"),
    params:
        journal=lambda wildcards: out(f"journal/{wildcards.shard}.jsonl"),
        prompts=prompt_params(),
        judge=judge_params(),
        retry_token=lambda wildcards: retry_token(wildcards, "verify"),
    script:
        "../../scripts/verify_qas.py"


rule merge_verify_failed:
    input:
        expand(out("verified/{shard}.failed.jsonl"), shard=SHARDS),
    output:
        out("verify_failed.jsonl"),
    log:
        out("logs/merge_verify_failed.log"),
    conda:
        "../../envs/vqaflow.yaml"
    script:
        "../../scripts/concat_jsonl.py"
