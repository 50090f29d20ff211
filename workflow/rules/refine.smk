rule refine_answers:
    input:
        out("generated/{shard}.jsonl"),
    output:
        out("refined/{shard}.jsonl"),
    log:
        out("logs/refine_answers/{shard}.log"),
    params:
        pipeline=config["pipeline"],
        structured_output=config["structured_output"],
        keys=config["keys"],
    conda:
        "../../envs/vqaflow.yaml"
    script:
        "../../scripts/refine_answers.py"
