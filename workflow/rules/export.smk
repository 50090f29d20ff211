rule export_training:
    input:
        finished_records(),
    output:
        conversations=out("export/conversations.json"),
        table=out("export/dataset.parquet"),
    log:
        out("logs/export_training.log"),
    conda:
        "../../envs/vqaflow.yaml"
    params:
        pipeline=config["pipeline"],
        columns=config["keys"],
        filters=config["export"],
    script:
        "../../scripts/export_training.py"
