rule refine_answers:
    input:
        shard=out("shards/{shard}.jsonl"),
        generated=out("generated/{shard}.jsonl"),
    output:
        out("refined/{shard}.jsonl"),
    log:
        out("logs/refine_answers/{shard}.log"),
    conda:
        "../../envs/vqaflow.yaml"
    params:
        pipeline=config["pipeline"],
        columns=config["keys"],
        filters=config["filters"],
    script:
        "../../scripts/refine_answers.py"
