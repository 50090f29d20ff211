import json
import os
import sys
import time

import yaml
from snakemake.utils import validate

sys.path.insert(0, os.path.join(workflow.current_basedir, "..", "..", "scripts"))

from vqaflow.plan import (
    Columns,
    ConfigError,
    check_combinations,
    check_input,
    check_keys,
    coerce,
    count_records,
    gate_message,
    input_files,
    input_kind,
    key_env,
    pipeline_section,
    public_config,
    run_summary,
    sample_positions,
    shard_names,
    shards_of,
    short_error,
)

with open(
    os.path.join(workflow.current_basedir, "..", "schemas", "config.schema.yaml"),
    encoding="utf-8",
) as schema_file:
    CONFIG_SCHEMA = yaml.safe_load(schema_file)
try:  # strings from --config made numbers, unknown keys named, defaults filled, input found
    config.update(coerce(config, CONFIG_SCHEMA))
    check_keys(config, CONFIG_SCHEMA)
    validate(config, schema="../schemas/config.schema.yaml")
    check_combinations(config)
    check_input(config["input"])
except (ConfigError, WorkflowError) as err:
    raise WorkflowError(short_error(err)) from None

STARTED = time.time()
RUN = config["run"]
OUT = f"results/{RUN}"
COLUMNS = Columns.from_config(config["keys"])
SHARDS = shard_names(count_records(config["input"], COLUMNS), config["shard_size"])


if "api_slots" not in workflow.global_resources:
    workflow.register_resource("api_slots", config["api"]["max_total_concurrency"])


wildcard_constraints:
    shard=r"shard-\d+",


def input_paths():
    """The input's files; a directory of images is tracked as the directory itself."""
    if input_kind(config["input"]) == "directory":
        return [config["input"]]
    return [str(path) for path in input_files(config["input"])]


def out(path):
    """A path under results/<run>/."""
    return f"{OUT}/{path}"


SWITCHES = {
    "verify": config["verify"]["enabled"],
    "dedup_images": config["dedup"]["images"] not in ("off", False),
    "dedup_requests": config["dedup"]["requests"],
}


def is_enabled(stage):
    """Whether an optional stage runs: "verify" (verify.enabled), "dedup_images"
    (dedup.images not off) or "dedup_requests" (dedup.requests)."""
    return SWITCHES[stage]


def structured_output(stage=None):
    """Whether requests ask for JSON matching a schema (true, false or "auto": the schema,
    free text where the endpoint rejects it): the top-level structured_output, or a stage's
    own structured_output (repair, verify) when that is not null."""
    override = config[stage]["structured_output"] if stage else None
    return config["structured_output"] if override is None else override


NOT_SHAPING = (
    "mem_mb",
    "runtime",
    "max_total_concurrency",
    "price_input_per_mtok",
    "price_output_per_mtok",
)


def api_params():
    """The api section as the job sees it: base URL and key variable resolved, no key,
    nothing that is only for the scheduler or the report (so changing it reruns nothing).
    """
    api = {k: v for k, v in config["api"].items() if k not in NOT_SHAPING}
    api["base_url"] = api["base_url"] or os.environ.get("OPENAI_BASE_URL")
    api["key_env"] = key_env(config)
    return api


def judge_params():
    """The judge's settings: the generator's backend section overridden by verify's, key by key."""
    verify = config["verify"]
    vllm = {**vllm_params(), **verify["vllm"]}
    api = {**api_params(), **verify["api"]}
    api["model"] = verify["model"] or api["model"]
    vllm["model"] = verify["model"] or vllm["model"]
    return {
        "backend": "vllm" if config["backend"] == "vllm" else "api",
        "model": vllm["model"] if config["backend"] == "vllm" else api["model"],
        "api": api,
        "vllm": vllm,
        "prompt": verify["prompt"],
        "structured_output": structured_output("verify"),
        "max_tokens": verify["max_tokens"],
    }


def reformat_params():
    """The reformat pass's settings: the generator's backend section overridden by reformat's,
    key by key; online also with backend: batch; on vLLM the generator's engine when nothing
    is overridden."""
    reformat = config["reformat"]
    backend = "vllm" if config["backend"] == "vllm" else "api"
    if not reformat["enabled"]:
        return {
            "enabled": False,
            "backend": backend,
            "max_tokens": reformat["max_tokens"],
        }
    # the job's resources and prices are the generate rule's
    api_overrides = {k: v for k, v in reformat["api"].items() if k not in NOT_SHAPING}
    vllm_overrides = {k: v for k, v in reformat["vllm"].items() if k not in NOT_SHAPING}
    vllm = {**vllm_params(), **vllm_overrides}
    api = {**api_params(), **api_overrides}
    api["model"] = reformat["model"] or api["model"]
    vllm["model"] = reformat["model"] or vllm["model"]
    return {
        "enabled": reformat["enabled"],
        "backend": backend,
        "max_tokens": reformat["max_tokens"],
        "api": api if backend == "api" else None,
        "vllm": vllm if backend == "vllm" else None,
        "share_engine": backend == "vllm" and vllm == vllm_params(),
    }


def job_resources(kind):
    """What a request job asks the scheduler for: GPUs on vLLM, else its share of the run's
    API slots, and the backend section's memory and wall time. ``kind``: "generate" (the
    generate rules and the preview's) or "judge" (the verify rules; on vLLM when generation
    is, else on the online API, counted with the verify.vllm / verify.api overrides).
    """
    backend = "vllm" if config["backend"] == "vllm" else "api"
    section = {
        **config[backend],
        **(config["verify"][backend] if kind == "judge" else {}),
    }
    if backend == "vllm":
        return {
            "gpu": section["tensor_parallel_size"],
            "mem_mb": section["mem_mb"],
            "runtime": section["runtime"],
        }
    return {
        "api_slots": min(
            section["max_concurrency"], config["api"]["max_total_concurrency"]
        ),
        "mem_mb": section["mem_mb"],
        "runtime": section["runtime"],
    }


def stage_records():
    """Every shard's records after the per-shard stages: verified when the judge runs, else
    refined."""
    stage = "verified" if is_enabled("verify") else "refined"
    return [out(f"{stage}/{shard}.jsonl") for shard in SHARDS]


def finished_records():
    """Every shard's finished records, as the dataset holds them: copies of identical
    requests filled in, questions repeated across the dataset flagged (finish_records).
    """
    return [out(f"final/{shard}.jsonl") for shard in SHARDS]


def duplicates_input():
    """The list of near-duplicate images, when image dedup is on."""
    return [out("duplicates.jsonl")] if is_enabled("dedup_images") else []


def request_duplicates_input():
    """The list of records whose request an earlier record makes, when dedup.requests is on."""
    return [out("request_duplicates.jsonl")] if is_enabled("dedup_requests") else []


def skip_lists():
    """What generation does not ask: near-duplicate images and copies of identical requests."""
    return duplicates_input() + request_duplicates_input()


def batch_params():
    """The batch section (backend: batch)."""
    return dict(config["batch"])


def vllm_params():
    """The vllm section without the scheduler's resources."""
    return {k: v for k, v in config["vllm"].items() if k not in NOT_SHAPING}


def prices():
    """What tokens cost, for stats.json and the report."""
    return {
        "input_per_mtok": config["api"]["price_input_per_mtok"],
        "output_per_mtok": config["api"]["price_output_per_mtok"],
        "batch_discount": config["batch"]["discount"],
    }


def prompt_params():
    """Everything that turns records into requests and decides what is asked again (with the
    pipeline's own config section, for a pipeline that has one)."""
    section = pipeline_section(config["pipeline"])
    return {
        "pipeline": config["pipeline"],
        "keys": config["keys"],
        "system_prompt": config["system_prompt"],
        "prompt": config["prompt"],
        "images": config["images"],
        "generation": config["generation"],
        "structured_output": structured_output(),
        "repair": {
            **config["repair"],
            "structured_output": structured_output("repair"),
        },
        "dedup": config["dedup"],
        "retry_rejected": config["retry_rejected"],
        **({section: config[section]} if section else {}),
    }


def retry_token(wildcards, stage="generate"):
    """A new value after a run of the shard's ``stage`` left failures that another attempt
    may fix (the job writes it beside the journal), so the same command reruns the job
    (params changed) and retries them; unchanged otherwise, so a finished job is left alone.
    """
    token = out(f"journal/{wildcards.shard}.{stage}.retry")
    if os.path.exists(token):
        with open(token, encoding="utf-8") as handle:
            return handle.read().strip()
    return ""


def final_outputs():
    return [
        out(f"dataset.{config['output_format']}"),
        out("failed.jsonl"),
        out("stats.json"),
        out("checks/failed_fraction.txt"),
        out("export/conversations.json"),
        out("export/dataset.parquet"),
        out("report/summary.html"),
        *([out("verify_failed.jsonl")] if is_enabled("verify") else []),
    ]


if config["backend"] in ("api", "batch") and key_env(config) in os.environ:

    envvars:
        key_env(config),


onstart:
    if config["backend"] in ("api", "batch") and not os.environ.get(
        key_env(config)
    ):
        raise WorkflowError(
            f"No API key: set the environment variable {key_env(config)} "
            "(or name another one in the config's api.key_env) and run again."
        )


def merged_this_run():
    """Whether this run's targets include the merged dataset (not, e.g., only the preview)."""
    return any(out("stats.json") in job.output for job in workflow.dag.jobs)


def read_stats():
    with open(out("stats.json"), encoding="utf-8") as stats:
        return json.load(stats)


def gate_failed_this_run():
    """Whether the failure gate ran in this run and stopped it (its output is missing)."""
    gate_log = out("logs/check_failed_fraction.log")
    return (
        os.path.exists(gate_log)
        and os.path.getmtime(gate_log) >= STARTED
        and not os.path.exists(out("checks/failed_fraction.txt"))
    )


onsuccess:
    if merged_this_run() and os.path.exists(out("stats.json")):
        paths = {
            "dataset": out(f"dataset.{config['output_format']}"),
            "failed": out("failed.jsonl"),
            "stats": out("stats.json"),
            "report": out("report/summary.html"),
            "verify_failed": out("verify_failed.jsonl"),
        }
        print(run_summary(read_stats(), RUN, paths), file=sys.stderr)


onerror:
    if gate_failed_this_run():  # repeated here, below Snakemake's own error lines
        message = gate_message(
            read_stats(),
            config["max_failed_fraction"],
            out(f"dataset.{config['output_format']}"),
            out("failed.jsonl"),
            out("verify_failed.jsonl") if is_enabled("verify") else None,
        )
        print(f"vqaflow: {message}", file=sys.stderr)


# --- the preview (workflow/rules/preview.smk) ---------------------------------------------

import functools


@functools.cache
def preview_record_count():
    """The input's records (counted only when a preview job is planned)."""
    return count_records(config["input"], COLUMNS)


def preview_positions():
    """The input positions of the preview's sample."""
    return sample_positions(
        preview_record_count(),
        config["preview"]["records"],
        config["generation"]["seed"],
    )


def preview_shard_files(wildcards):
    """The shards holding the preview's sample, as the full run splits the input."""
    return [
        out(f"shards/{shard}.jsonl")
        for shard in shards_of(preview_positions(), config["shard_size"])
    ]


def preview_plan():
    """How the full run will go, for the preview's projection."""
    api = config["api"]
    return {
        "backend": config["backend"],
        "prices": prices(),
        "max_concurrency": api["max_concurrency"],
        "max_total_concurrency": api["max_total_concurrency"],
        "requests_per_minute": api["requests_per_minute"],
        "tokens_per_minute": api["tokens_per_minute"],
        "shards": len(SHARDS),
        "shard_size": config["shard_size"],
        "seed": config["generation"]["seed"],
    }


def preview_verified():
    """The judged sample, when the run verifies."""
    if is_enabled("verify"):
        return {"verified": out("preview/verified.jsonl")}
    return {}


# --- the Hub export (workflow/rules/hub.smk) ---------------------------------------------


def hub_card_params():
    """What the dataset card tells about the run (no endpoint, no key)."""
    judge = judge_params()
    return {
        "run": RUN,
        "input": config["input"],
        "backend": config["backend"],
        "model": (
            config["vllm"]["model"]
            if config["backend"] == "vllm"
            else config["api"]["model"]
        ),
        "license": config["hub"]["license"],
        "repo": config["hub"]["repo"],
        "structured_output": config["structured_output"],
        "generation": config["generation"],
        "rule_filters": config["filters"],
        "export": config["export"],
        "dedup": config["dedup"],
        "judge": (
            {
                "model": judge["model"],
                "prompt": judge["prompt"],
                "structured_output": judge["structured_output"],
            }
            if config["verify"]["enabled"]
            else None
        ),
    }


def hub_targets():
    """The folder, and its upload when hub.repo is set."""
    return [out("hub"), *([out("hub_upload.json")] if config["hub"]["repo"] else [])]
