# The preview (`snakemake preview`): the request stages on an even sample of the input, into
# the journals of the sampled records' shards (so the full run does not ask them again), and
# what the full run will take: results/<run>/preview/estimate.json and samples.html.


rule preview_generate:
    input:
        preview_shard_files,
    output:
        sample=out("preview/sample.jsonl"),
        answers=out("preview/generated.jsonl"),
        failed=out("preview/failed.jsonl"),
        requests=out("preview/requests.jsonl"),
    log:
        out("logs/preview_generate.log"),
    conda:
        "../../envs/vllm.yaml"
        if config["backend"] == "vllm"
        else "../../envs/vqaflow.yaml"
    resources:
        **job_resources("generate"),
    params:
        positions=lambda wildcards: preview_positions(),
        journal_dir=out("journal"),
        backend=config["backend"],
        prompts=prompt_params(),
        api=api_params(),
        vllm=vllm_params(),
        reformat=reformat_params(),
    script:
        "../../scripts/preview_generate.py"


# the run's own refine rule (same script and params), on the preview's answers
use rule refine_answers as preview_refine with:
    input:
        shard=out("preview/sample.jsonl"),
        generated=out("preview/generated.jsonl"),
    output:
        out("preview/refined.jsonl"),
    log:
        out("logs/preview_refine.log"),


# with verify.enabled: the judge on the sample, into the same journals (the run's verify jobs
# find these verdicts)
rule preview_verify:
    input:
        refined=out("preview/refined.jsonl"),
        sample=out("preview/sample.jsonl"),
    output:
        verified=out("preview/verified.jsonl"),
        failed=out("preview/verify_failed.jsonl"),
    log:
        out("logs/preview_verify.log"),
    conda:
        "../../envs/vllm.yaml"
        if config["backend"] == "vllm"
        else "../../envs/vqaflow.yaml"
    resources:
        **job_resources("judge"),
    params:
        journal_dir=out("journal"),
        prompts=prompt_params(),
        judge=judge_params(),
    script:
        "../../scripts/preview_verify.py"


rule preview:
    input:
        **preview_verified(),
        requests=out("preview/requests.jsonl"),
        refined=out("preview/refined.jsonl"),
        failed=out("preview/failed.jsonl"),
    output:
        estimate=out("preview/estimate.json"),
        samples=out("preview/samples.html"),
    log:
        out("logs/preview.log"),
    conda:
        "../../envs/vqaflow.yaml"
    params:
        run=RUN,
        records=lambda wildcards: preview_record_count(),
        plan=lambda wildcards: preview_plan(),
        pipeline=config["pipeline"],
        columns=config["keys"],
        image_root=config["images"]["root"],
    script:
        "../../scripts/preview_estimate.py"
