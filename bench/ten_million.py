"""Ten million records on one machine: planning, one job's parse, shard, per-shard image
hashing, the dedup match and the merge (issue 24).

Synthetic records in a temporary directory (no requests: none of these steps sends one).
Each step runs in a fresh process; its wall time, CPU time and peak RSS are its own.

- plan: `snakemake -n` on an N-line JSONL input at shard_size 10,000, the first time (the
  input is counted and the manifest written) and again (the manifest is read); plain and
  through profiles/slurm-10m with dedup.images on (groups planned);
- parse: what a cluster job adds by parsing the workflow, `snakemake --target-jobs
  refine_answers:shard=shard-00000 -n` against the same on a 10-record input;
- shard: the split job (`write_shards`) at shard_size 10,000;
- hash: one `hash_images` job, a 10,000-record shard of small synthetic JPEGs, one process;
- match: the `dedup_images` job over 10^6 hash lines (100 shards of random 64-bit keys);
- merge: 10^6 records into JSONL and Parquet (shard, answers, refine and finish as bench/scale.py).

    python bench/ten_million.py --records 10000000 --merge-records 1000000 --output bench/results-ten-million.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests"), str(REPO / "bench")]

import scale  # noqa: E402
from vqaflow.inputs.shards import count_records, shard_names, write_shards  # noqa: E402
from vqaflow.jsonl import read_jsonl, write_jsonl  # noqa: E402
from workflow_helpers import COLUMNS  # noqa: E402

SHARD_SIZE = 10_000
ENV = {**os.environ, "OPENAI_API_KEY": "bench"}


def write_config(workdir: Path, **extra) -> Path:
    config = workdir / "bench.yaml"
    lines = ["run: tenm", "input: input.jsonl", "pipeline: context_vqa", f"shard_size: {SHARD_SIZE}"]
    config.write_text("\n".join(lines + [f"{key}: {json.dumps(value)}" for key, value in extra.items()]) + "\n")
    return config


def snakemake_args(workdir: Path, config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
            str(workdir), "--configfile", str(config), *args]


def step_plan(workdir: Path, variant: str) -> dict:
    """`snakemake -n` of the whole run ("plain"), or through the 10 M profile with image dedup
    on ("groups": 1,000 hash_images in groups of 16 and 1,000 refine_answers in groups of 50)."""
    if variant == "plain":
        args = snakemake_args(workdir, write_config(workdir), "-n", "--cores", "2")
    else:
        config = write_config(workdir, dedup={"images": "perceptual"})
        args = snakemake_args(workdir, config, "-n", "--profile", str(REPO / "profiles" / "slurm-10m"))
    result = subprocess.run(args, check=True, capture_output=True, text=True, env=ENV)
    out = result.stdout + result.stderr
    return {"jobs": int(next(line.split()[-1] for line in out.splitlines() if line.startswith("total"))),
            "group_jobs": out.count("Group job ")}


def step_parse(workdir: Path) -> dict:
    """What a cluster job runs before its script: parse the workflow, plan its one job."""
    generated = workdir / "results" / "tenm" / "generated" / "shard-00000.jsonl"
    generated.parent.mkdir(parents=True, exist_ok=True)
    generated.touch()
    args = snakemake_args(workdir, write_config(workdir), "--target-jobs", "refine_answers:shard=shard-00000",
                          "--allowed-rules", "refine_answers", "--force", "--nolock", "-n", "--cores", "1")
    subprocess.run(args, check=True, capture_output=True, env=ENV)
    return {}


def step_shard(workdir: Path) -> dict:
    source = workdir / "input.jsonl"
    names = shard_names(count_records(source, COLUMNS), SHARD_SIZE)
    paths = [workdir / "shards" / f"{name}.jsonl" for name in names]
    return {"records": len(write_shards(source, paths, SHARD_SIZE, COLUMNS)), "shards": len(paths)}


def make_images(workdir: Path, count: int) -> Path:
    """A shard of ``count`` records, each with its own small textured JPEG (320x240)."""
    from PIL import Image

    images = workdir / "images"
    images.mkdir(exist_ok=True)
    random.seed(0)
    with (workdir / "image-shard.jsonl").open("w") as out:
        for n in range(count):
            path = images / f"{n:06d}.jpg"
            bands = [Image.effect_noise((40, 30), 80).resize((320, 240), Image.BICUBIC) for _ in range(3)]
            Image.merge("RGB", bands).save(path, "JPEG", quality=85)
            out.write(json.dumps({"id": f"{n:06d}", "index": n, "record": {"id": f"{n:06d}", "image": [str(path)]}}) + "\n")
    return workdir / "image-shard.jsonl"


def step_hash(workdir: Path) -> dict:
    """One hash_images job (as scripts/hash_images.py, threads: 1)."""
    from vqaflow.inputs.image_refs import image_refs
    from vqaflow.quality.image_dedup import hash_records

    items = ((line["id"], image_refs(line["record"]["image"])) for line in read_jsonl(workdir / "image-shard.jsonl"))
    timing: dict = {}
    count = write_jsonl(workdir / "hashes.jsonl", hash_records(items, "perceptual", ".", workers=1, timing=timing))
    return {"records": count, **timing}


def make_hashes(workdir: Path, count: int) -> list[Path]:
    """Hash lines of ``count`` records in shards of 10,000: random 64-bit keys, 1 % near copies."""
    rng = random.Random(1)
    folder = workdir / "hashes"
    folder.mkdir(exist_ok=True)
    paths, keys = [], []
    for start in range(0, count, SHARD_SIZE):
        path = folder / f"shard-{start // SHARD_SIZE:05d}.jsonl"
        with path.open("w") as out:
            for n in range(start, min(count, start + SHARD_SIZE)):
                key = keys[rng.randrange(len(keys))] ^ (1 << rng.randrange(64)) if keys and rng.random() < 0.01 \
                    else rng.getrandbits(64)
                if len(keys) < 100_000:
                    keys.append(key)
                out.write(json.dumps({"id": f"{n:08d}", "keys": [key]}) + "\n")
        paths.append(path)
    return paths


def step_match(workdir: Path) -> dict:
    """The dedup_images job (as scripts/dedup_images.py) over every hash file."""
    from vqaflow.quality.image_dedup import DuplicateMatcher

    paths = sorted((workdir / "hashes").iterdir())
    expected = sum(1 for path in paths for _ in path.open("rb"))
    matcher = DuplicateMatcher("perceptual", 4, expected)
    for path in paths:
        for line in read_jsonl(path):
            matcher.add(line)
    write_jsonl(workdir / "duplicates.jsonl", matcher.duplicates)
    return {"records": matcher.counts["records"], "duplicates": matcher.counts["duplicates"]}


STEPS = {"plan": step_plan, "parse": step_parse, "shard": step_shard, "hash": step_hash, "match": step_match,
         "refine": scale.step_refine, "finish": scale.step_finish, "merge": scale.step_merge}


def run_step(name: str, workdir: Path, *args: str) -> dict:
    """Run one step in a fresh process: wall time, CPU time (its own and its children's) and peak RSS."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, __file__, "--step", name, str(workdir), *args],
                            check=True, capture_output=True, text=True)
    row = {"step": " ".join((name, *args)), "seconds": round(time.monotonic() - started, 2),
           **json.loads(result.stdout.splitlines()[-1])}
    print(json.dumps(row), flush=True)
    return row


def big_input(workdir: Path, count: int) -> None:
    """``count`` records of about 110 bytes, written in blocks (10^7: 1.1 GB in about a minute)."""
    with (workdir / "input.jsonl").open("w") as out:
        for start in range(0, count, 100_000):
            out.write("".join(
                f'{{"id": "{n:08d}", "image": ["images/{n:08d}.jpg"], "source": "bench", '
                f'"conversation": [{{"from": "human", "value": "<image>\\nDescribe."}}]}}\n'
                for n in range(start, min(count, start + 100_000))))
    past = time.time() - 60  # an input written a while ago (see vqaflow.inputs.manifest: RACY_NS)
    os.utime(workdir / "input.jsonl", (past, past))


def planning_rows(root: Path, records: int) -> list[dict]:
    rows = []
    small = root / "small"
    small.mkdir()
    big_input(small, 10)
    big = root / "big"
    big.mkdir()
    big_input(big, records)
    for variant in ("plain", "groups"):
        for attempt in ("first", "again"):
            if attempt == "first":
                shutil.rmtree(big / "results" / "tenm" / "manifest", ignore_errors=True)
            rows.append({"records": records, "attempt": attempt, **run_step("plan", big, variant)})
    for workdir, count in ((big, records), (small, 10), (big, records), (small, 10), (big, records), (small, 10)):
        rows.append({"records": count, **run_step("parse", workdir)})
    if records >= 1_000_000:
        rows.append({"records": records, **run_step("shard", big)})
    shutil.rmtree(big)
    return rows


def dedup_rows(root: Path, images: int, match_records: int) -> list[dict]:
    work = root / "dedup"
    work.mkdir()
    make_images(work, images)
    rows = [{"records": images, **run_step("hash", work)}]
    shutil.rmtree(work / "images")
    make_hashes(work, match_records)
    rows.append({"records": match_records, **run_step("match", work)})
    shutil.rmtree(work)
    return rows


def merge_rows(root: Path, records: int) -> list[dict]:
    work = root / "merge"
    work.mkdir()
    scale.make_input(work / "input.jsonl", records)
    rows = [{"records": records, **run_step("shard", work)}]
    scale.make_generated(work)
    run_step("refine", work, "2")
    rows.append({"records": records, **run_step("finish", work)})
    for output_format in ("jsonl", "parquet"):
        rows.append({"records": records, **run_step("merge", work, output_format)})
    shutil.rmtree(work)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="records of the planning input")
    parser.add_argument("--merge-records", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=SHARD_SIZE, help="records of the hashed shard")
    parser.add_argument("--match-records", type=int, default=1_000_000)
    parser.add_argument("--parts", nargs="+", default=["planning", "dedup", "merge"],
                        help="what to measure (default: all); with --output, replaces these parts' rows")
    parser.add_argument("--tmp", type=Path, default=None, help="where the temporary directory goes")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        name, workdir, *rest = args.step
        extra = [int(value) if value.isdigit() else value for value in rest]
        result = STEPS[name](Path(workdir), *extra)
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = sum(usage.ru_utime + usage.ru_stime for usage in (own, children))
        print(json.dumps({**result, "cpu_seconds": round(cpu, 2),
                          "peak_rss_mb": max(own.ru_maxrss, children.ru_maxrss) // 1024}))
        return
    parts = {"planning": lambda root: planning_rows(root, args.records),
             "dedup": lambda root: dedup_rows(root, args.images, args.match_records),
             "merge": lambda root: merge_rows(root, args.merge_records)}
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for part in args.parts:
            rows += [{"part": part, "commit": commit, **row} for row in parts[part](Path(tmp))]
            rows[-1]["load_average"] = [round(load, 2) for load in os.getloadavg()]
    if args.output:  # the parts run now replace the same parts of an earlier run
        kept = json.loads(args.output.read_text())["rows"] if args.output.exists() else []
        rows = [row for row in kept if row.get("part") not in args.parts] + rows
        machine = f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        args.output.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
