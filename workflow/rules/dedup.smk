# Image dedup in two steps: each shard's images are hashed by a job of their own (decoding
# is what costs: spread over the cluster; the `dedup` group lets --group-components put
# several shards in one cluster job), then one small job matches the keys in input order.


rule hash_images:
    input:
        out("shards/{shard}.jsonl"),
    output:
        out("dedup/hashes/{shard}.jsonl"),
    log:
        out("logs/hash_images/{shard}.log"),
    benchmark:
        out("benchmarks/hash_images/{shard}.tsv")
    group:
        "dedup"
    conda:
        "../../envs/vqaflow.yaml"
    threads: 1  # many jobs in parallel, not a process pool each
    params:
        columns=config["keys"],
        image_root=config["images"]["root"],
        mode=config["dedup"]["images"],
    script:
        "../../scripts/hash_images.py"


rule dedup_images:
    input:
        expand(out("dedup/hashes/{shard}.jsonl"), shard=SHARDS),
    output:
        out("duplicates.jsonl"),
    log:
        out("logs/dedup_images.log"),
    benchmark:
        out("benchmarks/dedup_images.tsv")
    conda:
        "../../envs/vqaflow.yaml"
    params:
        mode=config["dedup"]["images"],
        max_distance=config["dedup"]["max_distance"],
    script:
        "../../scripts/dedup_images.py"
