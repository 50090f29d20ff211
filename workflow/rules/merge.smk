rule merge_dataset:
    input:
        refined=finished_records(),
        failed=[
            *expand(out("generated/{shard}.failed.jsonl"), shard=SHARDS),
            out("final/copies.failed.jsonl"),
        ],
        duplicates=duplicates_input(),
    output:
        dataset=out(f"dataset.{config['output_format']}"),
        failed=out("failed.jsonl"),
        stats=out("stats.json"),
        side=side_files(),
    log:
        out("logs/merge_dataset.log"),
    conda:
        "../../envs/vqaflow.yaml"
    params:
        pipeline=config["pipeline"],
        output_format=config["output_format"],
        columns=config["keys"],
        prices=prices(),
        structured_output={
            "requested": structured_output(),
            **(
                {"judge": structured_output("verify")}
                if config["verify"]["enabled"]
                else {}
            ),
            **(
                {"blind": structured_output("verify")}
                if config["verify"]["blind"]
                else {}
            ),
        },
    script:
        "../../scripts/merge_dataset.py"


rule check_failed_fraction:
    input:
        stats=out("stats.json"),
        dataset=out(f"dataset.{config['output_format']}"),
        failed=out("failed.jsonl"),
        verify_failed=[out("verify_failed.jsonl")] if is_enabled("verify") else [],
    output:
        out("checks/failed_fraction.txt"),
    log:
        out("logs/check_failed_fraction.log"),
    conda:
        "../../envs/vqaflow.yaml"
    params:
        max_failed_fraction=config["max_failed_fraction"],
    script:
        "../../scripts/check_failed_fraction.py"
