#!/usr/bin/env bash
# The README's commands, as a reader runs them: a fresh virtual environment with `pip install -e .`
# (no extras), then the quick start's demo and its report (endpoint named by OPENAI_BASE_URL), your
# own config from the checkout (endpoint named by api.base_url) and its report, the "run it from
# any directory" layout with its report, and the module example, all against the project's test
# server (key test-key, model test-vlm) instead of OpenAI.
# Each command is first looked up in README.md, so the README cannot drift from what is run here.
# The runs happen in a copy of the checkout (tracked and new files) in a temporary directory.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
readme="$repo/README.md"
start=$SECONDS
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "readme-commands: $*" >&2; exit 1; }
# in_readme TEXT: TEXT appears verbatim in README.md
in_readme() { grep -qF -- "$1" "$readme" || fail "README.md no longer shows: $1"; }
# in_readme_line COMMAND: a line of README.md is COMMAND, maybe followed by a comment
in_readme_line() {
    awk -v c="$1" '{ sub(/ +#.*$/, "") } $0 == c { found = 1 } END { exit !found }' "$readme" ||
        fail "README.md no longer shows the command: $1"
}
# run LOG CMD...: run a command, its output in LOG, shown in full when it fails
run() {
    local log=$1 rc=0; shift
    echo "  \$ ${*}"
    "$@" >"$log" 2>&1 || rc=$?
    [ "$rc" = 0 ] || { cat "$log" >&2; fail "failed ($rc): $*"; }
}
# check_run DIR RUN RECORDS: results/RUN in DIR holds RECORDS answered records and no failures
check_run() {
    "$py" - "$1/results/$2" "$3" <<'PY' || fail "unexpected results in $1/results/$2"
import json, sys
from pathlib import Path
out, expected = Path(sys.argv[1]), int(sys.argv[2])
stats = json.loads((out / "stats.json").read_text())
lines = [line for line in (out / "dataset.jsonl").read_text().splitlines() if line.strip()]
assert stats["records_ok"] == expected == len(lines) and stats["records_failed"] == 0, stats
assert (out / "export" / "conversations.json").is_file() and (out / "export" / "dataset.parquet").is_file()
PY
}
# check_report FILE: a self-contained HTML report of some size
check_report() {
    [ -f "$1" ] || fail "no report at $1"
    local size; size=$(stat -c %s "$1")
    [ "$size" -gt 100000 ] || fail "report $1 is only $size bytes"
    grep -q "<html" "$1" || fail "report $1 is not HTML"
    echo "  report: $1 ($size bytes)"
}
# records DIR: the demo's records as DIR/data/records.jsonl with the images in DIR/images,
# laid out as the README's "Your own data" describes
records() {
    mkdir -p "$1/data" "$1/images"
    cp "$repo"/demo/images/* "$1/images/"
    "$py" - "$repo/demo/sample_data.json" "$1/data/records.jsonl" <<'PY'
import json, sys
records = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as out:
    for n, record in enumerate(records):
        images = record["image"] if isinstance(record["image"], list) else [record["image"]]
        record = {"id": f"own-{n}", **record, "image": [p.replace("./demo/images/", "./images/") for p in images]}
        out.write(json.dumps(record) + "\n")
PY
}

# This shell's python3 (it has aiohttp from the test extra) runs the test server and the checks.
py=$(python3 -c 'import sys; print(sys.executable)')

echo "== fresh venv, pip install -e . (no extras)"
in_readme_line "pip install -e ."
"$py" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q -e "$repo" 2>&1 | { grep -v "^WARNING: Location" || true; }
# only the venv's snakemake from here on
export PATH="$work/venv/bin:$PATH"
[ "$(command -v snakemake)" = "$work/venv/bin/snakemake" ] || fail "snakemake is not the venv's"
unset OPENAI_API_KEY DF_API_KEY OPENAI_BASE_URL

echo "== the test server (with this shell's python3, which has aiohttp from the test extra)"
"$py" "$repo/tests/chat_server.py" --port 0 --ready-file "$work/url.txt" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/url.txt" ] && break; sleep 0.1; done
[ -s "$work/url.txt" ] || { cat "$work/server.log" >&2; fail "the test server did not start"; }
url=$(cat "$work/url.txt")
echo "  $url"

# The checkout as a reader has it, without results of earlier runs.
checkout="$work/vqaflow"
mkdir -p "$checkout"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"; done | xargs -0 cp --parents -t "$checkout")

echo "== quick start: the demo and its report, endpoint named by OPENAI_BASE_URL"
in_readme_line "snakemake --cores 4"
in_readme "export OPENAI_BASE_URL=http://localhost:8000/v1 OPENAI_API_KEY=EMPTY"
in_readme "snakemake --cores 4 --config api='{model: "
in_readme_line "snakemake --report report.html"
cd "$checkout"
OPENAI_BASE_URL=$url OPENAI_API_KEY=test-key \
    run "$work/demo.log" snakemake --cores 4 --config api='{model: test-vlm}'
check_run "$checkout" demo 6
in_readme "dataset: results/demo/dataset.jsonl"
grep -qx "dataset: results/demo/dataset.jsonl" "$work/demo.log" || fail "the run's summary does not name the dataset"
banner=$(grep "Config file(s):" "$work/demo.log")
[ "$(grep -o "config\.yaml" <<<"$banner" | wc -l)" = 1 ] || fail "config file listed more than once: $banner"
run "$work/demo-report.log" snakemake --report report.html
check_report "$checkout/report.html"

# own_config FILE: the README's config under "Your own data" written to FILE; prints its run name.
# (Its model is swapped for the test server's on the command line.)
own_config() {
    awk '/^### Your own data/ {s=1} s && /^```yaml/ {y=1; next} y && /^```/ {exit} y' "$readme" >"$1"
    grep -q "^run: " "$1" || fail "no yaml block under \"### Your own data\" in README.md"
    local run_name; run_name=$(awk '/^run: / {print $2}' "$1")
    echo "$run_name"
}

echo "== your own config from the checkout, the endpoint named by api.base_url, and its report"
in_readme "snakemake --cores 4 --config api='{base_url: "
in_readme_line "snakemake --report report.html --configfile my.yaml"
run_name=$(own_config "$checkout/my.yaml")
records "$checkout"
rm -f report.html
in_readme_line "snakemake preview --cores 4 --configfile my.yaml"
OPENAI_API_KEY=test-key run "$work/preview.log" snakemake preview --cores 4 --configfile my.yaml \
    --config api="{base_url: \"$url\", model: test-vlm}"
[ -s "results/$run_name/preview/estimate.json" ] || fail "the preview wrote no estimate.json"
[ -s "results/$run_name/preview/samples.html" ] || fail "the preview wrote no samples.html"
OPENAI_API_KEY=test-key \
    run "$work/own.log" snakemake --cores 4 --configfile my.yaml --config api="{base_url: \"$url\", model: test-vlm}"
check_run "$checkout" "$run_name" 6
run "$work/own-report.log" snakemake --report report.html --configfile my.yaml
check_report "$checkout/report.html"

echo "== your own data from another directory (--snakefile, --directory), and its report"
in_readme_line "snakemake --snakefile /path/to/vqaflow/Snakefile --directory my_run --configfile my.yaml --cores 4"
in_readme_line "snakemake --snakefile /path/to/vqaflow/Snakefile --directory my_run --configfile my.yaml --report report.html"
elsewhere="$work/elsewhere"
mkdir -p "$elsewhere/my_run"
cd "$elsewhere"
own_config my.yaml >/dev/null
records my_run
in_readme_line "snakemake preview --snakefile /path/to/vqaflow/Snakefile --directory my_run --configfile my.yaml --cores 4"
OPENAI_BASE_URL=$url OPENAI_API_KEY=test-key \
    run "$work/layout-preview.log" snakemake preview --snakefile "$repo/Snakefile" --directory my_run \
    --configfile my.yaml --cores 4 --config api='{model: test-vlm}'
[ -s "my_run/results/$run_name/preview/estimate.json" ] || fail "the preview from another directory wrote no estimate.json"
OPENAI_BASE_URL=$url OPENAI_API_KEY=test-key \
    run "$work/layout.log" snakemake --snakefile "$repo/Snakefile" --directory my_run --configfile my.yaml --cores 4 \
    --config api='{model: test-vlm}'
check_run "$elsewhere/my_run" "$run_name" 6
run "$work/layout-report.log" \
    snakemake --snakefile "$repo/Snakefile" --directory my_run --configfile my.yaml --report report.html
check_report "$elsewhere/my_run/report.html"

echo "== the module example (github(...) replaced by this checkout's Snakefile)"
in_readme "use rule * from vqaflow as vqaflow_*"
module="$work/module"
mkdir -p "$module/config"
cd "$module"
awk '/^### From your own workflow/ {s=1} s && /^```python/ {y=1; next} y && /^```/ {exit} y' "$readme" \
    | sed -E "s|github\([^)]*\)|\"$repo/Snakefile\"|" >Snakefile
grep -q "^module vqaflow:" Snakefile || fail "no module example under \"### From your own workflow\" in README.md"
own_config config/config.yaml >/dev/null
records .
OPENAI_BASE_URL=$url OPENAI_API_KEY=test-key \
    run "$work/module.log" snakemake --cores 4 --config api='{model: test-vlm}'
check_run "$module" "$run_name" 6

echo "readme-commands: all passed in $((SECONDS - start)) s"
