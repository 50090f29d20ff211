"""The workflow's own steps at scale: shard, refine, finish and merge N records; plan 1,000 shards.

Synthetic inputs (an image path per record, never read); refinement reads stored raw answers (no model).
Each step runs in a fresh process, so its wall time and peak RSS are its own.

    python bench/scale.py --records 10000 100000 1000000 --output bench/results-scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

from vqaflow.costs import Prices  # noqa: E402
from vqaflow.inputs.shards import count_records, shard_names, write_shards  # noqa: E402
from vqaflow.jsonl import read_jsonl  # noqa: E402
from vqaflow.pipelines import PIPELINES  # noqa: E402
from vqaflow.quality.filters import FilterSettings  # noqa: E402
from vqaflow.stages import finish, merge, refine  # noqa: E402
from workflow_helpers import COLUMNS, schema_defaults  # noqa: E402

CONTEXT_VQA = PIPELINES["context_vqa"]
FILTERS = FilterSettings(**schema_defaults()["filters"])
PRICES = Prices(None, None, 0.5)

ANSWER = (  # every content line differs between records, as in real answers; labels repeat
    "**Wikipedia Article:**\n\nThe lighthouse at cape {n} stands on a rocky point above the harbour. "
    "Its lamp was electrified in {year} and it is still in service.\n\n**Question Answer Pairs:**\n\n"
    "1. **Question:** Where does the lighthouse at cape {n} stand?\n   **Answer:** on a rocky point\n"
    "2. **Question:** When was the lamp of cape {n} electrified?\n   **Answer:** {year}\n"
)
GENERATION = {"backend": "api", "model": "bench", "finish_reason": "stop", "prompt_tokens": 900,
              "completion_tokens": 120, "latency_s": 1.2, "attempts": 1}


def make_input(path: Path, count: int) -> None:
    """Records with an image each (no step here reads the files): as in real inputs, records
    rarely share an image, which would add the near-duplicate question check of refinement."""
    with path.open("w") as out:
        for n in range(count):
            out.write(json.dumps({
                "id": f"{n:08d}", "image": [f"images/{n:08d}.jpg"], "source": "bench",
                "conversation": [{"from": "human", "value": "<image>\nWrite a Wikipedia article."}],
            }) + "\n")


def step_shard(workdir: Path, shard_size: int) -> dict:
    source = workdir / "input.jsonl"
    names = shard_names(count_records(source, COLUMNS), shard_size)
    paths = [workdir / "shards" / f"{name}.jsonl" for name in names]
    return {"records": len(write_shards(source, paths, shard_size, COLUMNS)), "shards": len(paths)}


def make_generated(workdir: Path) -> None:
    """What generation would have written: per shard line a raw answer and what it was read into."""
    (workdir / "generated").mkdir()
    for shard in sorted((workdir / "shards").iterdir()):
        with (workdir / "generated" / shard.name).open("w") as out:
            for line in read_jsonl(shard):
                answer = ANSWER.format(n=line["id"], year=1800 + line["index"] % 200)
                generated = {"id": line["id"], "index": line["index"], "answer": answer, "generation": GENERATION,
                             "parsed": asdict(CONTEXT_VQA.parse(answer, GENERATION["finish_reason"]))}
                out.write(json.dumps(generated) + "\n")
        (workdir / "generated" / shard.name.replace(".jsonl", ".failed.jsonl")).write_text("")


def _refine_one(generated: Path) -> int:
    workdir = generated.parent.parent
    return refine.refine_shard(workdir / "shards" / generated.name, generated, workdir / "refined" / generated.name,
                               CONTEXT_VQA, COLUMNS, FILTERS)


def step_refine(workdir: Path, processes: int) -> dict:
    """Refine every shard, ``processes`` shards at a time, as `snakemake --cores N` runs
    refine_answers jobs side by side; with the workers' CPU time."""
    (workdir / "refined").mkdir()
    shards = sorted((workdir / "generated").glob("shard-?????.jsonl"))
    with ProcessPoolExecutor(processes) as pool:
        count = sum(pool.map(_refine_one, shards, chunksize=8))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, joined: CPU time holds on a busy machine
    return {"records": count, "processes": processes, "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2)}


def step_finish(workdir: Path) -> dict:
    """The run-level pass before the merge (no copies: every record has its own request)."""
    refined = sorted((workdir / "refined").iterdir())
    (workdir / "final").mkdir(exist_ok=True)
    counts = finish.finish(refined, [workdir / "shards" / path.name for path in refined],
                           [workdir / "final" / path.name for path in refined], workdir / "copies.failed.jsonl",
                           [], None, CONTEXT_VQA, COLUMNS)
    return {"records": counts["records"]}


def step_merge(workdir: Path, output_format: str) -> dict:
    refined = sorted((workdir / "final").glob("shard-?????.jsonl"))
    failed = sorted((workdir / "generated").glob("*.failed.jsonl"))
    stats = merge.merge(refined, failed, workdir / f"dataset.{output_format}", workdir / "failed.jsonl",
                          workdir / "stats.json", output_format, CONTEXT_VQA, COLUMNS, PRICES)
    return {"records": stats["records_ok"]}


def step_plan(workdir: Path, shards: int) -> dict:
    config = workdir / "plan.yaml"
    config.write_text(f"run: plan\ninput: input.jsonl\npipeline: context_vqa\nshard_size: "
                      f"{-(-count_records(workdir / 'input.jsonl', COLUMNS) // shards)}\n")
    subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "all", "--snakefile",
                    str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
                    "--cores", "2"], check=True, capture_output=True)
    return {"shards": shards}


STEPS = {"shard": step_shard, "refine": step_refine, "finish": step_finish, "merge": step_merge, "plan": step_plan}


def run_step(name: str, workdir: Path, *args: str) -> dict:
    """Run one step in a fresh process; its wall time and peak RSS."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, __file__, "--step", name, str(workdir), *args],
                            check=True, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    return {"step": " ".join((name, *args)), "seconds": round(elapsed, 2),
            **json.loads(result.stdout.splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        name, workdir, *rest = args.step
        conversions = {"shard": int, "plan": int, "merge": str, "refine": int, "finish": str}
        extra = [conversions[name](value) for value in rest]
        result = STEPS[name](Path(workdir), *extra)
        # the largest process of the step: itself, or a child (refine workers, snakemake -n)
        peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        print(json.dumps({**result, "peak_rss_mb": peak // 1024}))
        return
    rows = []
    for count in args.records:
        with tempfile.TemporaryDirectory(dir=REPO / "bench") as tmp:
            workdir = Path(tmp)
            os.symlink(REPO / "demo", workdir / "demo")
            make_input(workdir / "input.jsonl", count)
            rows.append({"records": count, **run_step("shard", workdir, str(args.shard_size))})
            make_generated(workdir)
            for processes in (1, 2):
                shutil.rmtree(workdir / "refined", ignore_errors=True)
                rows.append({"records": count, **run_step("refine", workdir, str(processes))})
            rows.append({"records": count, **run_step("finish", workdir)})
            for output_format in ("jsonl", "parquet"):
                rows.append({"records": count, **run_step("merge", workdir, output_format)})
            if count == max(args.records):
                rows.append({"records": count, **run_step("plan", workdir, "1000")})
            for row in rows[-7:]:
                print(json.dumps(row), flush=True)
    result = {"machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
              "rows": rows}
    print("| records | step | seconds | records/s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for row in rows:
        rate = "-" if row["step"].startswith("plan") else round(row["records"] / row["seconds"])
        print(f"| {row['records']} | {row['step']} | {row['seconds']} | {rate} | {row['peak_rss_mb']} |")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
