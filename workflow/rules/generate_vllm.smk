rule generate_vllm:
    input:
        out("shards/{shard}.jsonl"),
        duplicates_input(),
    output:
        answers=out("generated/{shard}.jsonl"),
        failed=out("generated/{shard}.failed.jsonl"),
    log:
        out("logs/generate_vllm/{shard}.log"),
    conda:
        "../../envs/vllm.yaml"
    resources:
        gpu=config["vllm"]["tensor_parallel_size"],
        mem_mb=config["vllm"]["mem_mb"],
        runtime=config["vllm"]["runtime"],
    params:
        journal=lambda wildcards: out(f"journal/{wildcards.shard}.jsonl"),
        prompts=prompt_params(),
        retry_token=retry_token,
        vllm=vllm_params(),
    script:
        "../../scripts/generate_vllm.py"
