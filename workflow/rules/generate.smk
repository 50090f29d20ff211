rule generate_api:
    input:
        out("shards/{shard}.jsonl"),
    output:
        answers=out("generated/{shard}.jsonl"),
        failed=out("generated/{shard}.failed.jsonl"),
    log:
        out("logs/generate_api/{shard}.log"),
    params:
        journal=lambda wildcards: out(f"journal/{wildcards.shard}.jsonl"),
        prompts=prompt_params(),
        api=api_params(),
    resources:
        api_slots=config["api"]["max_concurrency"],
        mem_mb=config["api"]["mem_mb"],
        runtime=config["api"]["runtime"],
    conda:
        "../../envs/vqaflow.yaml"
    script:
        "../../scripts/generate_api.py"
