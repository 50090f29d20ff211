rule refine_answers:
    input:
        shard=out("shards/{shard}.jsonl"),
        generated=out("generated/{shard}.jsonl"),
    output:
        # with verify, only the judge reads it: deleted once the shard is verified
        (
            temp(out("refined/{shard}.jsonl"))
            if is_enabled("verify")
            else out("refined/{shard}.jsonl")
        ),
    log:
        out("logs/refine_answers/{shard}.log"),
    group:
        "refine"  # seconds a shard: --group-components refine=N puts N shards in one cluster job
    conda:
        "../../envs/vqaflow.yaml"
    params:
        pipeline=config["pipeline"],
        columns=config["keys"],
        filters=config["filters"],
    script:
        "../../scripts/refine_answers.py"
