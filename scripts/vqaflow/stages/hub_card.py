"""The dataset card (``README.md``) of the Hub folder: YAML front matter the Hub reads (license,
task, size, the data files and their features) and a body saying how the data was made."""

from __future__ import annotations

import datetime
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import __version__
from ..pipelines import Pipeline

SIZE_CATEGORIES = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
                   (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"))
SHOWN_PROMPTS = 3  # distinct prompts the card shows when the records had their own


@dataclass(frozen=True)
class CardSettings:
    """What the card tells about the run, from the config (the ``hub`` rule's ``card`` params)."""

    run: str
    input: str
    backend: str
    model: str
    license: str
    repo: str | None
    structured_output: bool | str  # true, false or "auto"
    generation: dict
    rule_filters: dict  # the config's filters: section
    export: dict
    dedup: dict
    judge: dict | None  # model, prompt (None: the pipeline's), structured_output; None without verify


@dataclass
class Survey:
    """What the export keeps, counted before anything is written."""

    records: int = 0
    pairs: int = 0
    multi_image: bool = False
    models: Counter = field(default_factory=Counter)
    systems: Counter = field(default_factory=Counter)  # system prompt -> records asked with it
    users: Counter = field(default_factory=Counter)  # user text (all user turns) -> records


def size_category(rows: int) -> str:
    """The Hub's size category for ``rows`` rows."""
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "1B<n<10B")


def front_matter(settings: CardSettings, found: Survey, features: list[dict], parts: list[Path],
                 size: int) -> dict:
    """The card's YAML header: what the Hub shows and how ``datasets`` reads the files."""
    header: dict = {"license": settings.license}
    if settings.rule_filters.get("language"):
        header["language"] = [settings.rule_filters["language"]]
    header.update({
        "pretty_name": settings.run,
        "task_categories": ["visual-question-answering" if any(f["name"] == "qas" for f in features)
                            else "image-to-text"],
        "tags": ["vqaflow", "synthetic"],
        "size_categories": [size_category(found.records)],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
        "dataset_info": {
            "features": features,
            "splits": [{"name": "train", "num_bytes": size, "num_examples": found.records}],
            "download_size": sum(part.stat().st_size for part in parts),
            "dataset_size": size,
        },
    })
    return header


def _table(rows: list[tuple[str, object]], head: tuple[str, str] = ("", "")) -> str:
    lines = [f"| {head[0]} | {head[1]} |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _block(text: str) -> str:
    return "```text\n" + text.strip().replace("```", "'''") + "\n```"


def _settings(values: dict) -> str:
    """``key: value`` pairs as the config writes them."""
    return ", ".join(f"`{key}`: {value if isinstance(value, str) else json.dumps(value)}"
                     for key, value in values.items())


def how_made(settings: CardSettings, pipeline: Pipeline, found: Survey) -> str:
    """Model, backend, pipeline, sampling and the prompts actually sent."""
    what = pipeline.about
    models = ", ".join(f"`{model}`" for model, _ in found.models.most_common()) or f"`{settings.model}`"
    rows = [("model", models), ("backend", f"`{settings.backend}`"), ("pipeline", f"`{pipeline.name}`: {what}"),
            ("input", f"`{Path(settings.input).name}`"), ("sampling", _settings(settings.generation)),
            ("structured output", f"`{str(settings.structured_output).lower()}`"),
            ("made with", f"vqaflow {__version__}, {datetime.date.today().isoformat()}")]
    parts = ["## How it was made", "", _table(rows), "", "### Prompts", "",
             _prompts("System prompt", found.systems), "", _prompts("User prompt", found.users),
             "", "The images open the first user turn, before its text."]
    return "\n".join(parts)


def _prompts(kind: str, used: Counter) -> str:
    """The one prompt of a kind the records were asked with, or the most common ones."""
    if len(used) <= 1:
        return f"{kind}:\n\n" + _block(next(iter(used), "") or "(none)")
    lines = [f"{kind}s: {len(used)} distinct (a record's own conversation wins over the configured prompt); "
             f"the {min(SHOWN_PROMPTS, len(used))} most common:"]
    for text, count in used.most_common(SHOWN_PROMPTS):
        lines += ["", f"{count} record(s):", "", _block(text or "(none)")]
    return "\n".join(lines)


def counts_and_funnel(stats: dict, found: Survey, judged: bool) -> str:
    """The run's counts (stats.json) and the quality funnel down to what this dataset holds."""
    status, quality = stats["parse_status"], stats["quality"]
    counts = [("records in the input", stats["records_in"]), ("answered", stats["records_ok"]),
              ("failed", stats["records_failed"]),
              ("parsed ok / partial / none", f"{status['ok']} / {status['partial']} / {status['none']}"),
              ("QA pairs", stats["qa_pairs"]), ("records in this dataset", found.records),
              ("pairs in this dataset", found.pairs)]
    if stats.get("cost") is not None:
        counts.append(("generation cost (USD)", stats["cost"]))
    funnel = [("records", stats["records_in"]), ("answered", stats["records_ok"]),
              ("parsed (ok or partial)", status["ok"] + status["partial"]), ("pairs", stats["qa_pairs"]),
              ("pairs without a rule flag", stats["qa_pairs"] - quality["flagged_pairs"]),
              ("pairs accepted by the judge", quality["accepted"] if judged else "no judge"),
              ("pairs in this dataset", found.pairs)]
    return "\n".join(["## Counts", "", _table(counts), "", "## Quality funnel", "",
                      "From every record of the input to the pairs kept here (stats.json of the run).", "",
                      _table(funnel, ("stage", "count"))])


def filters_and_judge(settings: CardSettings, stats: dict, pipeline: Pipeline) -> str:
    """The rule checks, the export's filters, dedup and the judge."""
    flags = stats["quality"]["flags"]
    raised = ", ".join(f"`{flag}` {count}" for flag, count in flags.items()) or "none"
    lines = ["## Filters", "",
             f"- Rule checks flag each pair ({_settings(settings.rule_filters)}); flags raised: {raised}.",
             f"- Kept in this dataset: {_settings(settings.export)}.",
             f"- Deduplication: {_settings(settings.dedup)}.", "", "## Judge", ""]
    judge = settings.judge
    if judge is None:
        lines.append("No judge model checked the pairs (`verify.enabled: false`).")
        return "\n".join(lines)
    quality = stats["quality"]
    rejected = ", ".join(f"{reason} {count}" for reason, count in quality["rejected"].items()) or "none"
    lines += [f"A judge model, `{judge['model']}`, was asked per record whether each pair is answerable and "
              f"correct (structured output: `{str(judge['structured_output']).lower()}`): "
              f"{quality['judged']} judged, {quality['accepted']} accepted, rejected: {rejected}, "
              f"{quality['unjudged']} not covered. Its criteria:", "", _block(judge["prompt"] or pipeline.judge_prompt)]
    return "\n".join(lines)


def using(settings: CardSettings, about: dict[str, str], folder_hint: str) -> str:
    """The columns and how to load the dataset."""
    source = settings.repo or folder_hint
    picture = "images" if "images" in about else "image"
    fields = [name for name in about if name not in ("id", picture, "context", "qas", "parse_status")]
    lines = ["## Columns", "", *[f"- `{name}`: {text}" for name, text in about.items()], "", "## Loading", "",
             "```python", "from datasets import load_dataset", "", f'ds = load_dataset("{source}", split="train")',
             "row = ds[0]", f'row["{picture}"]  # PIL image' + ("s" if picture == "images" else ""),
             'row["qas"]  # [{"question": ..., "answer": ...}]' if "qas" in about else
             "  ".join(f'row["{name}"]' for name in fields), "```"]
    return "\n".join(lines)


def card_text(settings: CardSettings, pipeline: Pipeline, stats: dict, found: Survey, features: list[dict],
              about: dict[str, str], parts: list[Path], size: int) -> str:
    """The whole card: front matter, then how it was made, counts, funnel, filters, judge, use."""
    header = yaml.safe_dump(front_matter(settings, found, features, parts, size), sort_keys=False,
                            allow_unicode=True)
    made = ("question-answer pairs about their images" if pipeline.pairs
            else f"training turns ({pipeline.about})")
    intro = (f"# {settings.run}\n\nVisual question answering data: {found.records} records with "
             f"{found.pairs} {made}, generated by a vision-language model "
             "with vqaflow (a Snakemake workflow for VQA data).")
    sections = [intro, how_made(settings, pipeline, found), counts_and_funnel(stats, found, settings.judge is not None),
                filters_and_judge(settings, stats, pipeline), using(settings, about, f"results/{settings.run}/hub")]
    return f"---\n{header}---\n\n" + "\n\n".join(sections) + "\n"
