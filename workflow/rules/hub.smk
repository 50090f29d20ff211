# `snakemake hub`: the run as a Hugging Face Hub dataset in results/<run>/hub/, uploaded to
# hub.repo when it is set (not part of `all`).


rule hub:
    input:
        hub_targets(),


rule hub_folder:
    input:
        records=finished_records(),
        stats=out("stats.json"),
        source=input_paths(),
    output:
        directory(out("hub")),
    log:
        out("logs/hub_folder.log"),
    conda:
        "../../envs/vqaflow.yaml"
    params:
        input_spec=lambda wildcards: config["input"],
        prompts=prompt_params(),
        filters=config["export"],
        card=hub_card_params(),
        max_part_mb=config["hub"]["max_part_mb"],
    script:
        "../../scripts/export_hub.py"


rule hub_upload:
    input:
        out("hub"),
    output:
        out("hub_upload.json"),
    log:
        out("logs/hub_upload.log"),
    localrule: True
    conda:
        "../../envs/vqaflow.yaml"
    params:
        repo=config["hub"]["repo"],
        private=config["hub"]["private"],
    script:
        "../../scripts/upload_hub.py"
