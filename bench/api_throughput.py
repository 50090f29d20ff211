"""Throughput of the API generation path against a server with a fixed latency.

Starts ``tests/chat_server.py`` in its own process with latency L, then for each
concurrency C runs N records (one demo image each) through ``generate_shard`` with the
API backend, the same code a ``generate_api`` job runs (image preparation, journal,
shard outputs). Ideal throughput is C / L requests per second.

    python bench/api_throughput.py --latency 0.5 --concurrency 8 32 64 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

from vqaflow.backends._factory import build_backend  # noqa: E402
from vqaflow.backends.api import ApiSettings  # noqa: E402
from vqaflow.inputs.shards import write_shards  # noqa: E402
from vqaflow.settings import prompt_settings  # noqa: E402
from vqaflow.stages.generate import generate_shard  # noqa: E402
from vqaflow.stages.repair import RepairSettings  # noqa: E402
from workflow_helpers import COLUMNS, sampling, schema_defaults, settings_from_defaults  # noqa: E402


def start_server(latency: float, workdir: Path) -> tuple[subprocess.Popen, str]:
    ready = workdir / "server.url"
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests/chat_server.py"), "--latency", str(latency),
         "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("the chat server did not start")
        time.sleep(0.05)
    return server, ready.read_text().strip()


def make_shard(workdir: Path, records: int) -> Path:
    images = sorted((REPO / "demo/images").iterdir())
    source = workdir / "records.jsonl"
    with source.open("w") as out:
        for n in range(records):
            record = {"id": f"r{n}", "image": str(images[n % len(images)]),
                      "conversation": [{"from": "human", "value": f"Write a Wikipedia article rec-{n}."}]}
            out.write(json.dumps(record) + "\n")
    shard = workdir / "shard.jsonl"
    write_shards(source, [shard], records, COLUMNS)
    return shard


def config(pipeline: str) -> dict:
    """The schema's defaults for ``pipeline``, as the workflow would validate them."""
    return {**schema_defaults(), "pipeline": pipeline}


def measure(base_url: str, concurrency: int, records: int, latency: float, workdir: Path) -> dict:
    run_dir = workdir / f"c{concurrency}"
    run_dir.mkdir()
    shard = make_shard(run_dir, records)
    api = settings_from_defaults(ApiSettings, "api", model="test-vlm", base_url=base_url, max_concurrency=concurrency)
    backend = build_backend("api", sampling(max_tokens=256), 1 << 20, api=asdict(api))
    started = time.monotonic()
    summary = generate_shard(shard, run_dir / "out.jsonl", run_dir / "failed.jsonl",
                             run_dir / "journal.jsonl", prompt_settings(config("context_vqa")), backend,
                             RepairSettings(enabled=False, max_tokens_factor=2, structured_output=False))
    elapsed = time.monotonic() - started
    assert summary["answered"] == records, summary
    achieved, ideal = records / elapsed, concurrency / latency
    return {"concurrency": concurrency, "records": records, "seconds": round(elapsed, 2),
            "achieved_rps": round(achieved, 1), "ideal_rps": round(ideal, 1),
            "fraction_of_ideal": round(achieved / ideal, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 64, 128])
    parser.add_argument("--waves", type=int, default=16, help="records per run = waves x C")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "test-key")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server, base_url = start_server(args.latency, workdir)
        try:
            rows = [measure(base_url, c, args.waves * c, args.latency, workdir) for c in args.concurrency]
        finally:
            server.terminate()
    result = {
        "latency_s": args.latency, "rows": rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    print("| C | records | seconds | achieved req/s | ideal req/s | achieved/ideal |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['concurrency']} | {row['records']} | {row['seconds']} | {row['achieved_rps']} "
              f"| {row['ideal_rps']} | {row['fraction_of_ideal']:.0%} |")
    print(f"peak RSS {result['peak_rss_mb']} MB; {result['machine']}")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
