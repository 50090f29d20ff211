"""Bytes uploaded per record and cost per 1,000 records on the demo images.

Runs the demo's records (``demo/sample_data.json``, context_vqa, one image each) through
``generate_shard`` against ``tests/chat_server.py``, once with the online API backend and
once with the Batch API backend, and reads what the server received: the request bodies
(online) and the batch input files (batch). The test server's token counts are made up, so
the cost is computed, not measured: text at 4 characters a token, images by OpenAI's
published tile formula for the model (from the image sizes the server decoded), answers at
assumed lengths, all at a stated price. Every one of these is an assumption; a
``snakemake preview`` against the real endpoint measures the real numbers.

    python bench/preview_cost.py --output bench/results-preview-cost.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

from chat_server import ChatServer  # noqa: E402
from vqaflow.backends._factory import build_backend  # noqa: E402
from vqaflow.backends.api import ApiSettings  # noqa: E402
from vqaflow.backends.tokens import text_tokens  # noqa: E402
from vqaflow.inputs.shards import write_shards  # noqa: E402
from vqaflow.jsonl import read_jsonl  # noqa: E402
from vqaflow.settings import prompt_settings  # noqa: E402
from vqaflow.stages.generate import generate_shard, prepare  # noqa: E402
from vqaflow.stages.repair import RepairSettings  # noqa: E402
from workflow_helpers import COLUMNS, sampling, schema_defaults, settings_from_defaults  # noqa: E402

# Assumptions, stated in docs/benchmarks.md: gpt-4o-mini's public list price (USD per million
# tokens) and its image tokens (OpenAI's vision docs: 2,833 base + 5,667 per 512-px tile in high
# detail, the default for these images), checked 2026-11; Batch API at half price.
MODEL = "gpt-4o-mini"
PRICE_INPUT, PRICE_OUTPUT, BATCH_DISCOUNT = 0.15, 0.60, 0.5
IMAGE_BASE, IMAGE_TILE = 2833, 5667
COMPLETION_TOKENS = (300, 600, 1000)  # assumed answer lengths: the test server's answers are canned
BATCH = {"poll_s": 0.01, "max_poll_s": 0.05, "fallback": "none", "max_requests": 50_000,
         "max_file_mb": 190, "completion_window": "24h", "discount": BATCH_DISCOUNT, "keep_files": False}
NO_REPAIR = RepairSettings(enabled=False, max_tokens_factor=2, structured_output=False)


def image_tokens(width: int, height: int) -> int:
    """OpenAI's high-detail tile count: fit in 2048x2048, shortest side to 768, 512-px tiles."""
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return IMAGE_BASE + IMAGE_TILE * math.ceil(width / 512) * math.ceil(height / 512)


def run(kind: str, server: ChatServer, shard: Path, settings, workdir: Path) -> None:
    api = settings_from_defaults(ApiSettings, "api", model="test-vlm", base_url=server.base_url)
    backend = build_backend("api" if kind == "online" else "batch", sampling(), settings.max_pixels,
                            api=asdict(api), batch=BATCH, state_path=workdir / f"{kind}.state.json")
    summary = generate_shard(shard, workdir / f"{kind}.jsonl", workdir / f"{kind}.failed.jsonl",
                             workdir / f"{kind}.journal.jsonl", settings, backend, NO_REPAIR)
    assert summary["answered"] == summary["records"], summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "test-key")
    config = {**schema_defaults(), "pipeline": "context_vqa",
              "images": {**schema_defaults()["images"], "root": str(REPO)}}
    settings = prompt_settings(config)
    with tempfile.TemporaryDirectory() as tmp, ChatServer() as server:
        workdir = Path(tmp)
        shard = workdir / "shard.jsonl"
        write_shards(REPO / "demo/sample_data.json", [shard], 10**6, COLUMNS)
        lines = list(read_jsonl(shard))
        run("online", server, shard, settings, workdir)
        online_bytes, sizes = server.stats["body_bytes"], list(server.stats["image_sizes"])
        run("batch", server, shard, settings, workdir)
    records = len(lines)
    text = [text_tokens(prepare(line, settings)[0]) for line in lines]
    pixels = [tuple(int(v) for v in size.split()[0].split("x")) for size in sizes]
    images = [image_tokens(w, h) for w, h in pixels]
    prompt = (sum(text) + sum(images)) / records
    rows = []
    for completion in COMPLETION_TOKENS:
        online = 1000 * (prompt * PRICE_INPUT + completion * PRICE_OUTPUT) / 1e6
        rows.append({"completion_tokens": completion, "cost_online_per_1000": round(online, 4),
                     "cost_batch_per_1000": round(online * BATCH_DISCOUNT, 4)})
    result = {
        "records": records, "images": len(sizes), "image_sizes_sent": sorted(set(sizes)),
        "bytes_per_record_online": round(online_bytes / records),
        "bytes_per_record_batch": round(server.batch_stats["bytes_uploaded"] / records),
        "text_tokens_per_record": round(sum(text) / records, 1),
        "image_tokens_per_record": round(sum(images) / records, 1),
        "prompt_tokens_per_record": round(prompt, 1),
        "assumptions": {"model": MODEL, "price_input_per_mtok": PRICE_INPUT,
                        "price_output_per_mtok": PRICE_OUTPUT, "batch_discount": BATCH_DISCOUNT,
                        "image_tokens": f"{IMAGE_BASE} + {IMAGE_TILE} per 512-px tile (high detail)",
                        "text_tokens": "4 characters a token"},
        "rows": rows,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    print(f"{records} records, {len(sizes)} images ({', '.join(result['image_sizes_sent'])}); "
          f"uploaded per record: {result['bytes_per_record_online']:,} B online, "
          f"{result['bytes_per_record_batch']:,} B batch; prompt tokens per record: {prompt:,.0f} "
          f"({result['text_tokens_per_record']:,.0f} text + {result['image_tokens_per_record']:,.0f} image)")
    print("| completion tokens (assumed) | online $ / 1,000 records | batch $ / 1,000 records |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['completion_tokens']} | {row['cost_online_per_1000']:.2f} | {row['cost_batch_per_1000']:.2f} |")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
