"""What a user reads: short config errors with a "did you mean", numbers from --config, a missing
input, the failure gate's way on, and the summary at the end of a run."""

from __future__ import annotations

import subprocess
import sys

import jsonschema
import pytest
from PIL import Image
from snakemake.exceptions import WorkflowError

from vqaflow.config_check import (
    ConfigError,
    check_input,
    check_keys,
    coerce,
    gate_message,
    run_summary,
    short_error,
    unknown_keys,
)
from workflow_helpers import (
    REPO,
    SCHEMA,
    read_output,
    snakemake,
    tagged_records,
    write_config,
    write_records,
)

STATS = {
    "records_in": 10, "records_ok": 7, "records_failed": 3, "failed_fraction": 0.3, "qa_pairs": 14,
    "parse_status": {"ok": 6, "partial": 1, "none": 0}, "failures_by_kind": {"image": 2, "rejected": 1},
    "failures_transient": 0, "tokens": {"prompt": 12345, "completion": 678}, "cost": None,
    "quality": {"flagged_pairs": 2, "judged": 0, "accepted": 0, "judge_cost": None},
}
PATHS = {"dataset": "results/r/dataset.jsonl", "failed": "results/r/failed.jsonl",
         "stats": "results/r/stats.json", "report": "results/r/report/summary.html"}


def test_the_snakefile_imports_only_the_standard_library_with_it():
    code = ("import sys; before = set(sys.modules); import vqaflow.config_check; "
            "print(*sorted(set(sys.modules) - before))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO / "scripts", capture_output=True, text=True,
                            check=True).stdout.split()
    assert [m for m in loaded if m.split(".")[0] not in (*sys.stdlib_module_names, "vqaflow")] == []


# --------------------------------------------------------------------------- numbers from --config


def test_strings_become_the_numbers_and_booleans_the_schema_wants():
    given = {"run": "007", "shard_size": "4", "max_failed_fraction": "0.5", "structured_output": "true",
             "api": {"max_concurrency": "2", "timeout_s": "30", "backoff_s": "0.5", "model": "123",
                     "price_input_per_mtok": "null", "key_env": "null"},
             "repair": {"enabled": "no"}, "export": {"drop_flags": ["1"]},
             "verify": {"api": {"max_concurrency": "3"}, "vllm": {"max_model_len": "2048"}}}
    made = coerce(given, SCHEMA)
    assert made["run"] == "007" and made["api"]["model"] == "123", "a string the schema allows stays"
    assert (made["shard_size"], made["max_failed_fraction"], made["structured_output"]) == (4, 0.5, True)
    api = made["api"]
    assert (api["max_concurrency"], api["timeout_s"], api["backoff_s"]) == (2, 30, 0.5)
    assert api["price_input_per_mtok"] is None and api["key_env"] == "null"
    assert made["repair"]["enabled"] is False and made["export"]["drop_flags"] == ["1"]
    assert made["verify"] == {"api": {"max_concurrency": 3}, "vllm": {"max_model_len": 2048}}
    assert given["api"]["max_concurrency"] == "2", "the config given is not changed"


@pytest.mark.parametrize(("given", "made"), [("false", False), ("no", False), ("off", "off"), ("exact", "exact"),
                                             ("perhaps", "perhaps")])
def test_an_enum_takes_a_boolean_where_it_lists_one_as_a_yaml_file_would(given, made):
    assert coerce({"dedup": {"images": given}}, SCHEMA)["dedup"]["images"] == made


@pytest.mark.parametrize("text", ["abc", "nan", "inf", "2.5"])
def test_strings_that_spell_no_such_value_stay_for_validation(text):
    assert coerce({"api": {"max_concurrency": text}}, SCHEMA)["api"]["max_concurrency"] == text


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(("config", "line"), [
    ({"pipline": "x"}, "pipline: unknown key; did you mean 'pipeline'?"),
    ({"api": {"max_concurency": 4}}, "api.max_concurency: unknown key; did you mean 'api.max_concurrency'?"),
    ({"max_concurrency": 4}, "max_concurrency: unknown key; did you mean 'api.max_concurrency'?"),
    ({"verify": {"api": {"modle": "m"}}}, "verify.api.modle: unknown key; did you mean 'verify.api.model'?"),
])
def test_an_unknown_key_is_named_with_the_closest_known_one(config, line):
    assert unknown_keys(config, SCHEMA) == [line]


def test_known_keys_and_free_form_sections_pass():
    config = {"run": "r", "api": {"model": "m"}, "verify": {"api": {"base_url": "u"}},
              "vllm": {"engine_args": {"anything": 1}}}
    assert unknown_keys(config, SCHEMA) == []


def test_a_key_like_no_other_lists_the_known_keys_and_many_problems_stay_short():
    assert unknown_keys({"images": {"zzz": 1}}, SCHEMA) == ["images.zzz: unknown key; known keys here: root, max_pixels"]
    with pytest.raises(ConfigError) as raised:
        check_keys({f"key{n}": n for n in range(30)}, SCHEMA)
    lines = str(raised.value).splitlines()
    assert len(lines) <= 10 and lines[-1].strip() == "... and 22 more" and "config/README.md" in lines[0]


# --------------------------------------------------------------------------- schema errors


def workflow_error(config: dict) -> WorkflowError:
    """The error Snakemake's validate() raises: a WorkflowError raised while handling the
    jsonschema ValidationError (its text holds the whole schema)."""
    try:
        try:
            jsonschema.Draft202012Validator(SCHEMA).validate(config)
        except jsonschema.ValidationError as e:
            raise WorkflowError("Error validating config file.", e)
    except WorkflowError as err:
        return err
    raise AssertionError("the config is valid")


def test_a_schema_error_is_the_key_what_is_wrong_and_what_is_expected():
    err = workflow_error({"run": "r", "input": "x", "pipeline": "image_vqa", "api": {"max_concurrency": 0}})
    assert "Failed validating" in str(err), "Snakemake's own text: the schema where it failed"
    assert short_error(err).splitlines() == [
        "Invalid config (every key is described in config/README.md):",
        "  api.max_concurrency: 0 is less than the minimum of 1 (expected: integer, >= 1, default 64)",
    ]


def test_a_misspelt_choice_gets_a_did_you_mean():
    err = workflow_error({"run": "r", "input": "x", "pipeline": "imag_vqa"})
    assert "pipeline: 'imag_vqa' is not one of" in short_error(err)
    assert short_error(err).endswith("did you mean 'image_vqa'?")


def test_other_errors_keep_their_text():
    assert short_error(ConfigError("input: x not found")) == "input: x not found"


# --------------------------------------------------------------------------- the input


def test_a_missing_input_is_not_found_with_its_resolved_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        check_input("fotos/")
    text = str(raised.value)
    assert "input: fotos/ not found" in text and str(tmp_path / "fotos") in text
    assert "directory of images" in text and len(text.splitlines()) == 2
    with pytest.raises(ConfigError, match=r"no file matches data/\*\.parquet"):
        check_input("data/*.parquet")
    (tmp_path / "fotos").mkdir()
    (tmp_path / "a.jsonl").write_text("")
    for spec in ("fotos/", "a.jsonl", "*.jsonl"):
        check_input(spec)


# --------------------------------------------------------------------------- run summaries


def test_the_run_summary_is_short_and_ends_with_the_dataset():
    lines = run_summary(STATS, "r", PATHS).splitlines()
    assert 5 <= len(lines) <= 8 and lines[-1] == "dataset: results/r/dataset.jsonl"
    text = "\n".join(lines)
    assert "10: 7 answered, 3 failed (image 2, rejected 1; reasons in results/r/failed.jsonl)" in text
    assert "6 ok, 1 partial, 0 unparsed" in text and "14 in the dataset, 2 flagged" in text
    assert "12,345 prompt + 678 completion; cost: no prices set" in text


def test_the_summary_prices_the_run_and_names_the_judge():
    stats = {**STATS, "cost": 0.0123, "quality": {**STATS["quality"], "judged": 14, "accepted": 12,
                                                  "judge_cost": 0.002}}
    text = run_summary(stats, "r", PATHS)
    assert "cost $0.0143" in text and "12 of 14 accepted by the judge" in text
    assert "cost $1,234.50" in run_summary({**stats, "cost": 1234.498}, "r", PATHS)


def test_the_gate_says_the_dataset_is_written_and_the_two_ways_on():
    text = gate_message(STATS, 0.05, PATHS["dataset"], PATHS["failed"])
    assert text.startswith("3 of 10 records failed (30.0%, more than max_failed_fraction: 5.0%)")
    assert "by kind: image 2, rejected 1" in text and PATHS["failed"] in text
    assert f"written with the 7 answered records: {PATHS['dataset']}" in text
    assert "run the same command again" in text and "--config max_failed_fraction=0.3)" in text
    assert len(text.splitlines()) <= 6


# --------------------------------------------------------------------------- through snakemake


@pytest.mark.workflow
def test_a_misspelt_key_stops_in_a_few_lines_naming_the_key(workdir):
    write_records(workdir, tagged_records(workdir, 2))
    write_config(workdir, "http://unused.invalid/v1")
    result = snakemake(workdir, "-n", "--config", "pipline=image_vqa", check=False)
    shown = result.stdout + result.stderr  # a dry run logs to stdout
    assert result.returncode != 0
    assert "pipline: unknown key; did you mean 'pipeline'?" in shown
    assert len(shown.splitlines()) <= 40 and "Failed validating" not in shown


@pytest.mark.workflow
def test_a_missing_input_says_not_found(workdir):
    write_config(workdir, "http://unused.invalid/v1", input="fotos/", pipeline="image_vqa")
    result = snakemake(workdir, "-n", check=False)
    shown = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"input: fotos/ not found (looked for {workdir / 'fotos'}" in shown
    assert "unsupported input format" not in shown and len(shown.splitlines()) <= 10


@pytest.mark.workflow
def test_numbers_from_the_command_line_run_and_the_run_ends_with_the_dataset(workdir, server):
    write_records(workdir, tagged_records(workdir, 6))
    write_config(workdir, server.base_url)
    snakemake(workdir, "-n", "--config", "api={max_concurrency: 2}")
    result = snakemake(workdir, "--config", "api={max_concurrency: 2}", "shard_size=6")
    assert 0 < server.stats["max_in_flight"] <= 2
    lines = result.stderr.rstrip().splitlines()
    first = max(n for n, line in enumerate(lines) if line.startswith("vqaflow run 'test' finished"))
    last = max(n for n, line in enumerate(lines) if line.startswith("dataset: "))
    assert lines[last] == "dataset: results/test/dataset.jsonl"
    assert last - first + 1 <= 8 and "6: 6 answered, 0 failed" in lines[first + 1]
    assert all(line.startswith(("Complete log", "Elapsed time")) for line in lines[last + 1:]), lines[last:]
    assert "records_in" not in result.stderr, "stats.json is not printed whole"


@pytest.mark.workflow
def test_the_failure_gate_names_the_dataset_written_and_max_failed_fraction(tmp_path, server):
    workdir = tmp_path / "run"
    (workdir / "photos").mkdir(parents=True)
    for n in range(10):
        if n in (2, 5, 8):
            (workdir / "photos" / f"p{n}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        else:
            Image.new("RGB", (64, 48), (n * 20, 100, 50)).save(workdir / "photos" / f"p{n}.png")
    write_config(workdir, server.base_url, input="photos", pipeline="image_vqa")
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    tail = result.stderr[result.stderr.rindex("Exiting because a job execution failed"):]
    assert "3 of 10 records failed" in tail and "by kind: image 3" in tail
    assert "dataset was written with the 7 answered records: results/test/dataset.jsonl" in tail
    assert "raise max_failed_fraction (e.g. --config max_failed_fraction=0.3)" in tail
    assert len(read_output(workdir, "dataset.jsonl")) == 7
