rule dedup_images:
    input:
        input_paths(),
    output:
        out("duplicates.jsonl"),
    log:
        out("logs/dedup_images.log"),
    benchmark:
        out("benchmarks/dedup_images.tsv")
    conda:
        "../../envs/vqaflow.yaml"
    threads: 2
    params:
        spec=lambda wildcards: config["input"],
        columns=config["keys"],
        image_root=config["images"]["root"],
        dedup=config["dedup"],
    script:
        "../../scripts/dedup_images.py"
