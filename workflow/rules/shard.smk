rule split_input:
    input:
        input_paths(),
    output:
        expand(out("shards/{shard}.jsonl"), shard=SHARDS),
    log:
        out("logs/split_input.log"),
    conda:
        "../../envs/vqaflow.yaml"
    params:
        spec=lambda wildcards: config["input"],
        shard_size=config["shard_size"],
        journal=out("journal"),
        columns=config["keys"],
        image_root=config["images"]["root"],
        files=INPUT.files,  # a folder's image list, as planned (not listed again)
    script:
        "../../scripts/split_input.py"
