rule split_input:
    input:
        config["input"],
    output:
        expand(out("shards/{shard}.jsonl"), shard=SHARDS),
    log:
        out("logs/split_input.log"),
    params:
        shard_size=config["shard_size"],
        keys=config["keys"],
    conda:
        "../../envs/vqaflow.yaml"
    script:
        "../../scripts/split_input.py"
