import os
import sys

from snakemake.utils import validate

sys.path.insert(0, os.path.join(workflow.current_basedir, "..", "..", "scripts"))

from vqaflow.columns import Columns
from vqaflow.records import count_records, input_files, input_kind, shard_names
from vqaflow.settings import key_env

validate(config, schema="../schemas/config.schema.yaml")

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
        "structured_output": verify["structured_output"],
        "max_tokens": verify["max_tokens"],
    }


def judge_resources():
    """What a verify job asks the scheduler for: GPUs for vLLM, API slots otherwise."""
    if config["backend"] == "vllm":
        return {
            "gpu": config["vllm"]["tensor_parallel_size"],
            "mem_mb": config["vllm"]["mem_mb"],
            "runtime": config["vllm"]["runtime"],
        }
    api = config["api"]
    return {
        "api_slots": min(api["max_concurrency"], api["max_total_concurrency"]),
        "mem_mb": api["mem_mb"],
        "runtime": api["runtime"],
    }


def finished_records():
    """Every shard's finished records: verified when the judge runs, else refined."""
    stage = "verified" if config["verify"]["enabled"] else "refined"
    return [out(f"{stage}/{shard}.jsonl") for shard in SHARDS]


def duplicates_input():
    """The list of near-duplicate images, when image dedup is on."""
    return (
        [out("duplicates.jsonl")]
        if config["dedup"]["images"] not in ("off", False)
        else []
    )


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
    """Everything that turns records into requests and decides what is asked again."""
    return {
        "pipeline": config["pipeline"],
        "keys": config["keys"],
        "system_prompt": config["system_prompt"],
        "prompt": config["prompt"],
        "images": config["images"],
        "generation": config["generation"],
        "structured_output": config["structured_output"],
        "repair": config["repair"],
        "dedup": config["dedup"],
        "retry_rejected": config["retry_rejected"],
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
        *([out("verify_failed.jsonl")] if config["verify"]["enabled"] else []),
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


onsuccess:
    stats_path = out("stats.json")
    if os.path.exists(stats_path):
        with open(stats_path) as stats:
            print(f"vqaflow run {RUN!r}: {stats.read().strip()}", file=sys.stderr)


# --- the preview (workflow/rules/preview.smk) ---------------------------------------------

import functools


@functools.cache
def preview_record_count():
    """The input's records (counted only when a preview job is planned)."""
    return count_records(config["input"], COLUMNS)


def preview_positions():
    """The input positions of the preview's sample."""
    from vqaflow.preview.sample import sample_positions

    return sample_positions(
        preview_record_count(),
        config["preview"]["records"],
        config["generation"]["seed"],
    )


def preview_shard_files(wildcards):
    """The shards holding the preview's sample, as the full run splits the input."""
    from vqaflow.preview.sample import shards_of

    return [
        out(f"shards/{shard}.jsonl")
        for shard in shards_of(preview_positions(), config["shard_size"])
    ]


def preview_resources():
    """The preview's generation job: an API job, or a GPU job with backend: vllm."""
    if config["backend"] == "vllm":
        return {
            "gpu": config["vllm"]["tensor_parallel_size"],
            "mem_mb": config["vllm"]["mem_mb"],
            "runtime": config["vllm"]["runtime"],
        }
    return {
        "api_slots": min(
            config["api"]["max_concurrency"], config["api"]["max_total_concurrency"]
        ),
        "mem_mb": config["api"]["mem_mb"],
        "runtime": config["api"]["runtime"],
    }


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
    if config["verify"]["enabled"]:
        return {"verified": out("preview/verified.jsonl")}
    return {}
