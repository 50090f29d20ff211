"""The Snakefile's one import, vqaflow.plan: standard library only through every module it
loads (the Snakefile runs in Snakemake's environment), and the only vqaflow module the
rules import."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import polars as pl

from workflow_helpers import REPO

SCRIPTS = REPO / "scripts"

# loads vqaflow.plan and uses everything the Snakefile uses, then lists the modules that came in
PLANNING = """
import json, sys
before = set(sys.modules)
from vqaflow import plan
columns = plan.Columns('id', 'image', 'conversation', 'vqa', 'context_vqa', 'qas')
counts = [plan.count_records(spec, columns) for spec in sys.argv[1:]]
import os, tempfile
planned = [plan.plan_input(spec, columns, 2, os.path.join(tempfile.mkdtemp(), 'input.json')).records
           for spec in sys.argv[1:]]
assert planned == counts, (planned, counts)
files = [str(path) for spec in sys.argv[1:] for path in plan.input_files(spec)]
kinds = [plan.input_kind(spec) for spec in sys.argv[1:]]
names = plan.shard_names(sum(counts), 2)
sample = plan.shards_of(plan.sample_positions(sum(counts), 3, 0), 2)
plan.key_env({'api': {'key_env': None}})
loaded = sorted(set(sys.modules) - before)
print(json.dumps({'plan': plan.__file__, 'counts': counts, 'kinds': kinds, 'loaded': loaded}))
"""


def test_plan_loads_only_the_standard_library(tmp_path):
    pl.DataFrame({"id": ["a", "b"], "image": [b"x", b"y"]}).write_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.jsonl").write_text('{"id": 1}\n\n{"id": 2}\n')
    (tmp_path / "c.json").write_text('{"data": [{"id": 1}]}')
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "x.PNG").write_bytes(b"")
    specs = ["a.parquet", "b.jsonl", "c.json", "pics", "*.parquet"]
    out = subprocess.run(
        [sys.executable, "-c", PLANNING, *(str(tmp_path / spec) for spec in specs)],
        check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SCRIPTS)},
    ).stdout
    result = json.loads(out)
    assert result["plan"] == str(SCRIPTS / "vqaflow" / "plan.py")  # this checkout's package
    assert result["counts"] == [2, 2, 1, 1, 2]
    assert result["kinds"] == ["file", "file", "file", "directory", "glob"]
    assert "vqaflow.plan" in result["loaded"]
    foreign = [name for name in result["loaded"]
               if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "vqaflow"]
    assert not foreign, f"vqaflow.plan loads modules outside the standard library: {foreign}"


def test_the_rules_import_only_vqaflow_plan():
    rule_files = [REPO / "Snakefile", *sorted((REPO / "workflow").rglob("*.smk"))]
    imports = [(path.name, line.strip()) for path in rule_files
               for line in path.read_text(encoding="utf-8").splitlines()
               if re.match(r"\s*(from|import)\s+vqaflow\b", line)]
    assert imports, "the rules import nothing from vqaflow"
    others = [(name, line) for name, line in imports if not line.startswith("from vqaflow.plan import ")]
    assert not others, f"rules importing other vqaflow modules than vqaflow.plan: {others}"
