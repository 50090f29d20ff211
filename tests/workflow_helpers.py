"""Running the real workflow with `snakemake` in a subprocess, in a fresh working directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import yaml

from vqaflow.columns import Columns

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "Snakefile"
DEMO_IMAGES = REPO / "demo" / "images"
TEST_KEY = "test-key"
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CPU_ENGINE = {  # small and single-process: the engine loads in seconds on 2 CPUs (shared with the workflow tests)
    "enforce_eager": True, "max_num_seqs": 8, "kv_cache_memory_bytes": 64 * 2**20,
    "distributed_executor_backend": "uni", "seed": 0,
}
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def schema_defaults(schema: dict = SCHEMA) -> dict:
    """The config the schema's defaults make, section by section."""
    made = {}
    for key, spec in schema["properties"].items():
        if spec.get("type") == "object" and "properties" in spec:
            made[key] = schema_defaults(spec)
        elif "default" in spec:
            made[key] = spec["default"]
    return made


def settings_from_defaults(cls, section: str, **overrides):
    """A settings dataclass built like the workflow builds it: the schema's defaults for
    ``section``, then ``overrides``; keys the dataclass does not hold are dropped."""
    from dataclasses import fields

    values = {**schema_defaults()[section], "key_env": "OPENAI_API_KEY", **overrides}
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def sampling(**overrides):
    """The ``generation:`` defaults as a Sampling, with ``overrides``."""
    from vqaflow.backends.base import Sampling

    generation = {**schema_defaults()["generation"], **overrides}
    return Sampling(generation["temperature"], generation["top_p"], generation["max_tokens"],
                    generation.get("json_schema"))


def make_workdir(tmp_path: Path, n_images: int = 5) -> Path:
    """A working directory holding a copy of the demo images under ./images."""
    workdir = tmp_path / "run"
    (workdir / "images").mkdir(parents=True)
    for source in sorted(DEMO_IMAGES.iterdir())[:n_images]:
        shutil.copy(source, workdir / "images" / source.name)
    return workdir


def image_names(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "images").iterdir())


def write_config(workdir: Path, base_url: str, **overrides) -> Path:
    """A config for the test server; nested dicts in ``overrides`` update sections."""
    config = {
        "run": "test",
        "input": "records.jsonl",
        "pipeline": "context_vqa",
        "shard_size": 4,
        "api": {
            "base_url": base_url, "model": "test-vlm", "max_concurrency": 8,
            "backoff_s": 0.01, "timeout_s": 10,
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_records(workdir: Path, records: list[dict], name: str = "records.jsonl") -> Path:
    path = workdir / name
    if name.endswith(".json"):
        path.write_text(json.dumps(records, indent=2))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def job_environment(key: str | None = TEST_KEY, env: dict | None = None) -> dict:
    """The environment of a `snakemake` run: no key but ``key``, and this checkout's package
    in every job, whichever checkout pip installed."""
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "DF_API_KEY", "OPENAI_BASE_URL")}
    if key is not None:
        environment["OPENAI_API_KEY"] = key
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "scripts"), environment.get("PYTHONPATH")]))
    environment.update(env or {})
    return environment


def snakemake(
    workdir: Path, *args: str, env: dict | None = None, key: str | None = TEST_KEY,
    timeout: float = 300, check: bool = True, configfile: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run snakemake on the workflow from ``workdir``; returns the completed process."""
    environment = job_environment(key, env)
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
        "--configfile", str(configfile or workdir / "config.yaml"), "--cores", "4", *args,
    ]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


def killed_when(workdir: Path, ready: Callable[[], bool], timeout: float = 120, *, key: str | None = TEST_KEY,
                env: dict | None = None, cores: int = 4) -> None:
    """Run snakemake on the workflow until ``ready()`` holds, then SIGKILL its whole process group
    (as a lost node or an impatient user would); fails when it ends first or ``timeout`` passes."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--cores", str(cores)]
    run = subprocess.Popen(command, env=job_environment(key, env), start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert run.poll() is None, "the workflow ended before the moment to kill it"
            assert time.monotonic() < deadline, "the moment to kill the workflow never came"
            time.sleep(0.05)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()


def journal_entries(workdir: Path, run: str = "test") -> list[dict]:
    """Every whole line of the run's journals (a line torn by a kill is left out)."""
    entries = []
    for path in sorted((workdir / "results" / run / "journal").glob("shard-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


def read_output(workdir: Path, name: str, run: str = "test") -> list[dict]:
    path = workdir / "results" / run / name
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if name.endswith(".parquet"):
        import polars as pl

        return pl.read_parquet(path).to_dicts()
    return json.loads(path.read_text())


def tagged_records(workdir, count: int, images_per_record: int = 1) -> list[dict]:
    """DataFlow-MM-style records, each tagged rec-<n> in its question."""
    names = image_names(workdir)
    return [
        {
            "id": f"r{n:03d}",
            "image": [f"images/{names[(n + k) % len(names)]}" for k in range(images_per_record)],
            "conversation": [{"from": "human", "value": f"<image>\nWrite a Wikipedia article rec-{n}."}],
            "code": "007",
        }
        for n in range(count)
    ]


def prompted_records(workdir, count: int, prompt: str) -> list[dict]:
    """Records whose user turn is ``prompt`` (``{n}``: the record's number, for its rec-<n> tag)."""
    names = image_names(workdir)
    return [{"id": f"r{n:03d}", "image": [f"images/{names[n % len(names)]}"],
             "conversation": [{"from": "human", "value": "<image>\n" + prompt.format(n=n)}]} for n in range(count)]


def vllm_config(workdir, model: str, **overrides):
    """A config for the vLLM backend on the tiny model, small enough for 2 CPUs."""
    settings = {
        "backend": "vllm", "pipeline": "image_vqa", "shard_size": 3, "max_failed_fraction": 0.5,
        "generation": {"max_tokens": 16}, "reformat": {"max_tokens": 48},
        "vllm": {"model": model, "max_model_len": 1024, "dtype": "bfloat16", "chunk_size": 2,
                 "mem_mb": 4000, "engine_args": CPU_ENGINE},
    }
    return write_config(workdir, "http://unused.invalid/v1", **{**settings, **overrides})


COLUMNS = Columns.from_config(schema_defaults()["keys"])


def png_header_only(path, width, height):
    """A PNG declaring ``width`` x ``height`` pixels in a few bytes (a decompression
    bomb's header: the limit must apply before any pixel data is read)."""

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    Path(path).write_bytes(data)
    return str(path)


def text_tasks(count: int, text: str = "Describe rec-{n}.", images: tuple[str, ...] = ()) -> list:
    """``count`` generation tasks tagged rec-<n> for the test server, each with its own seed."""
    from vqaflow.backends.base import GenerationTask
    from vqaflow.prompts import Prompt

    return [GenerationTask(f"r{n}", Prompt(None, (("user", text.format(n=n)),), images), seed=n)
            for n in range(count)]


def api_settings_for(base_url: str, **overrides):
    """The api section's defaults for the test server, with quick backoff."""
    from vqaflow.backends.api import ApiSettings

    return settings_from_defaults(ApiSettings, "api", **{"model": "test-vlm", "backoff_s": 0.01,
                                                          "base_url": base_url, **overrides})
