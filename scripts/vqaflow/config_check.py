"""What the workflow tells the user about a config and a run, in a few lines.

Before the schema validates the config: values ``--config`` passes as strings are turned into
the numbers, booleans or nulls the schema wants, and keys the schema does not know are named with
the closest known key. A schema error becomes a short text (key path, what is wrong, what is
expected), a missing input says "not found" with its resolved path, and a finished run or a
failure gate is summed up from stats.json.

Only the standard library is imported here: the Snakefile imports this module.
"""

from __future__ import annotations

import copy
import difflib
import glob
import json
import math
import os
import re
from collections.abc import Iterator
from typing import Any

README = "config/README.md"
ACCEPTED_INPUTS = (
    "a JSON array, JSONL or Parquet file of records (.json, .jsonl, .parquet), "
    "a glob of such files, or a directory of images"
)
OVERRIDDEN = {"api": "api", "vllm": "vllm"}  # <stage>.<key>: overrides of the section <value>, key by key
OVERRIDING = ("verify", "reformat")  # the stages with such overrides
MAX_PROBLEMS = 8
# the config section holding a pipeline's own settings, for the pipelines that have one (its steps
# see it as ``StepInput.settings``; the rules pass it to the request jobs)
PIPELINE_SECTIONS: dict[str, str] = {"visual_mcq": "mcq", "scale_caption": "scale_caption"}
# a pipeline's side fields (``Pipeline.side``), each merged into results/<run>/<field>.jsonl
PIPELINE_SIDE_FIELDS: dict[str, tuple[str, ...]] = {"visual_mcq": ("mcq_dropped",)}
_GLOB_MAGIC = re.compile(r"[*?[]")
_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_NULLS = ("null", "~")
# a key whose value is a secret wherever it appears (api_key, hf_token, password, ...); not
# max_tokens, key_env (the name of a variable) or keys (column names)
_SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password|passwd|credentials?|authorization)$", re.I)
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class ConfigError(ValueError):
    """The config cannot be used; the message says which key, why and what is expected."""


# --------------------------------------------------------------------------- strings from --config


def _types(spec: dict) -> list[str]:
    kind = spec.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "integer" if isinstance(value, int) else "number" if isinstance(value, float) else "string"


def _parsed(text: str, kind: str) -> tuple[bool, Any]:
    """``(True, value)`` when ``text`` spells a value of JSON type ``kind`` as YAML would."""
    word = text.strip()
    if kind == "integer" and re.fullmatch(r"[-+]?\d+", word):
        return True, int(word)
    if kind == "number":
        if re.fullmatch(r"[-+]?\d+", word):
            return True, int(word)
        try:
            number = float(word)
        except ValueError:
            return False, None
        return math.isfinite(number), number
    if kind == "boolean" and word.lower() in _BOOLEANS:
        return True, _BOOLEANS[word.lower()]
    if kind == "null" and word.lower() in _NULLS:
        return True, None
    return False, None


def _scalar(text: str, spec: dict) -> Any:
    """``text`` as the number, integer, boolean or null ``spec`` wants; unchanged when a
    string is allowed or nothing else fits (validation then says what is wrong)."""
    allowed = spec.get("enum")
    kinds = _types(spec) or sorted({_json_type(v) for v in allowed or ()})
    if "string" in kinds and (allowed is None or text in allowed):
        return text
    for kind in ("integer", "number", "boolean", "null"):
        if kind in kinds:
            ok, value = _parsed(text, kind)
            if ok and (allowed is None or value in allowed):
                return value
    return text


def _coerced(value: Any, spec: dict) -> Any:
    if isinstance(value, str):
        return _scalar(value, spec)
    if isinstance(value, dict):
        properties = spec.get("properties", {})
        return {key: _coerced(item, properties.get(key, {})) for key, item in value.items()}
    if isinstance(value, list) and isinstance(spec.get("items"), dict):
        return [_coerced(item, spec["items"]) for item in value]
    return value


def with_overrides(schema: dict) -> dict:
    """The schema with ``verify.api``, ``verify.vllm``, ``reformat.api`` and ``reformat.vllm``
    described by the sections they override (for coercion and key checks only: validating
    with it would fill their defaults)."""
    described = copy.deepcopy(schema)
    for stage in OVERRIDING:
        overrides = described["properties"][stage]["properties"]
        for key, section in OVERRIDDEN.items():
            overrides[key] = {**overrides[key], "additionalProperties": False,
                              "properties": described["properties"][section]["properties"]}
    return described


def coerce(config: dict, schema: dict) -> dict:
    """``config`` with strings turned into the numbers, integers, booleans or nulls the schema
    wants: ``--config api='{max_concurrency: 2}'`` passes ``'2'``. Strings that spell nothing
    the schema wants stay, for validation to report."""
    return _coerced(config, with_overrides(schema))


def public_config(value: Any) -> Any:
    """The config as JSON values without secrets: keys named like a secret (``api_key``,
    ``token``, ``password``, ...) left out, the ``user:password@`` of URLs removed. What the
    report shows and digests (keys themselves live in the environment, never in the config)."""
    if isinstance(value, dict):
        return {str(key): public_config(item) for key, item in value.items() if not _SECRET_KEY.search(str(key))}
    if isinstance(value, (list, tuple)):
        return [public_config(item) for item in value]
    if isinstance(value, str):
        return _URL_USERINFO.sub("", value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


# --------------------------------------------------------------------------- unknown keys


def _dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "config"


def _all_keys(schema: dict, path: tuple = ()) -> Iterator[tuple]:
    for key, spec in schema.get("properties", {}).items():
        yield (*path, key)
        yield from _all_keys(spec, (*path, key))


def _suggestion(key: str, path: tuple, known: list[str], schema: dict) -> str:
    """The closest key at ``path``, else a key of that name (or close) elsewhere."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{_dotted((*path, close[0]))}'?"
    elsewhere = {_dotted(p): p[-1] for p in _all_keys(schema) if p[:-1] != path}
    leaf = difflib.get_close_matches(key, set(elsewhere.values()), n=1, cutoff=0.8)
    if leaf:
        return "did you mean " + " or ".join(f"'{k}'" for k, v in elsewhere.items() if v == leaf[0]) + "?"
    return "known keys here: " + ", ".join(known)


def unknown_keys(config: dict, schema: dict) -> list[str]:
    """One line per key the schema does not know: its path and the closest known key."""
    described = with_overrides(schema)
    problems = []

    def walk(value: Any, spec: dict, path: tuple) -> None:
        properties = spec.get("properties")
        if not isinstance(value, dict) or not isinstance(properties, dict):
            return
        for key, item in value.items():
            if key in properties:
                walk(item, properties[key], (*path, key))
            elif spec.get("additionalProperties") is False:
                hint = _suggestion(str(key), path, list(properties), schema)
                problems.append(f"{_dotted((*path, key))}: unknown key; {hint}")

    walk(config, described, ())
    return problems


# --------------------------------------------------------------------------- short error text


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def expected(spec: dict) -> str:
    """What a key takes, in words: type or choices, bounds, pattern, default."""
    parts = []
    if "enum" in spec:
        parts.append("one of " + ", ".join(_show(v) for v in spec["enum"]))
    elif _types(spec):
        parts.append(" or ".join(_types(spec)))
    for keyword, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if keyword in spec:
            parts.append(f"{sign} {spec[keyword]}")
    if "pattern" in spec:
        parts.append(f"matching {spec['pattern']}")
    if "default" in spec:
        parts.append(f"default {_show(spec['default'])}")
    return ", ".join(parts)


def problem_text(problems: list[str]) -> str:
    """The config's problems under one heading, at most ``MAX_PROBLEMS`` of them."""
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
    return f"Invalid config (every key is described in {README}):\n" + "\n".join(f"  {p}" for p in shown)


def check_keys(config: dict, schema: dict) -> None:
    """Raise :class:`ConfigError` naming every key the schema does not know."""
    problems = unknown_keys(config, schema)
    if problems:
        raise ConfigError(problem_text(problems))


def short_error(error: Exception) -> str:
    """A config error in a few lines. A schema validation error (Snakemake's
    ``WorkflowError`` raised while handling a jsonschema ``ValidationError``, which prints the
    whole schema) becomes: key path, what is wrong, what is expected."""
    cause = next((e for e in (error, error.__cause__, error.__context__) if hasattr(e, "absolute_path")), None)
    if cause is None:
        return str(error)
    line = f"{_dotted(tuple(cause.absolute_path))}: {cause.message}"
    if cause.validator == "enum":
        close = difflib.get_close_matches(str(cause.instance), [str(c) for c in cause.validator_value], n=1)
        line += f"; did you mean '{close[0]}'?" if close else ""
    elif cause.absolute_path and cause.validator != "required":
        line += f" (expected: {expected(cause.schema)})"
    return problem_text([line])


def pipeline_section(pipeline: str) -> str | None:
    """The config section holding the settings of ``pipeline`` (None: it has none)."""
    return PIPELINE_SECTIONS.get(pipeline)


def pipeline_side_fields(pipeline: str) -> tuple[str, ...]:
    """The side fields of ``pipeline`` (the merge stage writes each to ``<field>.jsonl``)."""
    return PIPELINE_SIDE_FIELDS.get(pipeline, ())


def check_combinations(config: dict) -> None:
    """Raise :class:`ConfigError` for keys that are valid alone but not together (after the
    schema filled the defaults), before any request."""
    problems = []
    if config["export"]["keep"] == "verified" and not config["verify"]["enabled"]:
        problems.append("export.keep: verified keeps only the pairs the judge accepted, but the judge is off "
                        "(verify.enabled: false), so every pair would be dropped; set verify.enabled: true, "
                        "or export.keep: all")
    if problems:
        raise ConfigError(problem_text(problems))


def check_input(spec: str) -> None:
    """Raise :class:`ConfigError` when the input names nothing: "not found", with the path
    resolved against the working directory and the inputs accepted."""
    if os.path.exists(spec) or (_GLOB_MAGIC.search(spec) and glob.glob(spec, recursive=True)):
        return
    what = f"no file matches {spec}" if _GLOB_MAGIC.search(spec) else f"{spec} not found"
    raise ConfigError(
        f"input: {what} (looked for {os.path.abspath(spec)}; a relative path is read from the working "
        f"directory, {os.getcwd()}).\n  input takes {ACCEPTED_INPUTS}."
    )


# --------------------------------------------------------------------------- run summaries


def _cost(stats: dict) -> str:
    costs = [c for c in (stats.get("cost"), stats.get("quality", {}).get("judge_cost")) if c is not None]
    if not costs:
        return "cost: no prices set (api.price_input_per_mtok, api.price_output_per_mtok)"
    total = sum(costs)
    return f"cost ${total:,.2f}" if total >= 1 else f"cost ${total:.4f}"


def _top_kinds(stats: dict, n: int = 3, with_judge: bool = True) -> str:
    checks = {f"{check} {kind}": count for check, key in (("judge", "verify_failures_by_kind"),
                                                           ("blind", "blind_failures_by_kind"))
              for kind, count in stats.get(key, {}).items() if with_judge}
    kinds = sorted({**stats.get("failures_by_kind", {}), **checks}.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{kind} {count}" for kind, count in kinds[:n])
    return text + (f", {len(kinds) - n} other kinds" if len(kinds) > n else "")


def run_summary(stats: dict, run: str, paths: dict[str, str]) -> str:
    """The end of a run in seven lines, the dataset's path last (stats.json holds the rest).
    ``paths``: dataset, failed, stats and report."""
    status, quality = stats["parse_status"], stats.get("quality", {})
    pairs = f"{stats['qa_pairs']} in the dataset, {quality.get('flagged_pairs', 0)} flagged by the filters"
    if quality.get("judged"):
        pairs += f", {quality['accepted']} of {quality['judged']} accepted by the judge"
    failures = f"{stats['records_failed']} failed"
    if stats["records_failed"]:
        failures += f" ({_top_kinds(stats, with_judge=False)}; reasons in {paths['failed']})"
    if stats.get("verify_failed"):
        failures += f", {stats['verify_failed']} not verified (reasons in {paths.get('verify_failed')})"
    tokens = stats["tokens"]
    return "\n".join([
        f"vqaflow run '{run}' finished:",
        f"  records    {stats['records_in']}: {stats['records_ok']} answered, {failures}",
        f"  parsed     {status['ok']} ok, {status['partial']} partial, {status['none']} unparsed",
        f"  QA pairs   {pairs}",
        f"  tokens     {tokens['prompt']:,} prompt + {tokens['completion']:,} completion; {_cost(stats)}",
        f"  more in    {paths['stats']}, {paths['report']}",
        f"dataset: {paths['dataset']}",
    ])


def gate_message(stats: dict, limit: float, dataset: str, failed: str, verify_failed: str | None = None) -> str:
    """Why the failure gate stops the run, that the dataset was written, and the two ways on.
    Records the judge could not verify (``verify_failed``) count as failed."""
    fraction = stats["failed_fraction"]
    judged = stats.get("verify_failed", 0)
    count = stats["records_failed"] + judged
    raised = math.ceil(round(fraction * 100, 6)) / 100
    reasons = f"{failed} and {verify_failed}" if judged and verify_failed else failed
    by = " or ".join(name for name, key in (("the judge", "verify_failures_by_kind"),
                                            ("the blind check", "blind_failures_by_kind"))
                     if stats.get(key)) or "the judge"
    unverified = f" ({judged} answered but not verified by {by})" if judged else ""
    judge_kinds = ", unusable judge answers" if judged else ""
    return "\n".join([
        f"{count} of {stats['records_in']} records failed{unverified} ({fraction:.1%}, more than "
        f"max_failed_fraction: {limit:.1%}); by kind: {_top_kinds(stats)}; reasons in {reasons}",
        f"The dataset was written with the {stats['records_ok']} answered records: {dataset}",
        "Two ways on:",
        f"  - run the same command again: transient failures (rate limits, timeouts, server errors{judge_kinds}; "
        f"{stats.get('failures_transient', 0)} of the {count}) are asked again",
        f"  - or keep the dataset as it is: raise max_failed_fraction (e.g. --config max_failed_fraction={raised:g})"
        " and run again",
    ])
