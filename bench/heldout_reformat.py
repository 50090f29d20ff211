"""The held-out answers (tests/data/heldout_answers.json) through parse -> reformat -> verify.

Each raw answer is parsed; every answer whose parse is not ``ok`` goes through the reformat
pass (``vqaflow.stages.reformat.reformat_answers``: the shard request loop, a journal, the
real ``openai`` client) to the test chat server playing a reformatting model that copies
verbatim: it answers with what a careful human extracted from that answer (the item's own
``context`` and ``qas``, the best reading even of the items that are not ``readable``), so
what is measured is the code's verification, and the parser's honesty in sending each answer
it cannot read to the reformat.

Scoring, per item (the parse compared after :func:`vqaflow.quality.text.normalise`, the
article as a whole and each question and answer in order):

- *should be ok*: ``readable`` and not cut off (``finish_reason`` ``stop``);
- *right*: an item that should be ok is ``ok`` with the human's fields; a readable cut-off item
  has the human's fields and is not ``ok``; an item that is not readable is not ``ok``;
- *wrong ok*: ``ok`` but not right.

With ``--honest`` the parser is made honest first, as issue 20's point 1 asks of it: every
parse that would be a wrong ``ok`` is marked ``partial`` (issue ``unread_text``) before the
reformat, so the figure is what the reformat adds once the parser never claims ``ok`` wrongly
(a simulation that uses the human labels, not a parser).

    python bench/heldout_reformat.py            # prints the table, writes bench/results-heldout-reformat.json
    python bench/heldout_reformat.py --honest   # ... bench/results-heldout-reformat-honest.json
    python bench/heldout_reformat.py --set N    # blind set N (2 to 7): tests/data/heldout_answers_N.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

from chat_server import ChatServer  # noqa: E402
from vqaflow.backends._factory import build_backend  # noqa: E402
from vqaflow.backends.base import Sampling  # noqa: E402
from vqaflow.pipelines import PIPELINES  # noqa: E402
from vqaflow.quality.text import normalise  # noqa: E402
from vqaflow.requests import ShardRequests  # noqa: E402
from vqaflow.stages.reformat import reformat_answers  # noqa: E402
from workflow_helpers import api_settings_for  # noqa: E402

SETS = {"1": "tests/data/heldout_answers.json", **{n: f"tests/data/heldout_answers_{n}.json" for n in "234567"}}


def fields(context, qas) -> tuple:
    return normalise(context or ""), [(normalise(qa["question"]), normalise(qa["answer"])) for qa in qas]


def score(item: dict, parsed) -> dict:
    want_article = PIPELINES[item["pipeline"]].want_article
    same = fields(parsed.context if want_article else "", parsed.qas) == fields(item["context"], item["qas"])
    should_be_ok = item["readable"] and item["finish_reason"] == "stop"
    ok = parsed.status == "ok"
    right = (ok and same) if should_be_ok else (not ok and (same or not item["readable"]))
    return {"status": parsed.status, "issues": list(parsed.issues), "right": right, "wrong_ok": ok and not right}


def measure(items: list[dict], honest: bool = False) -> dict:
    os.environ.setdefault("OPENAI_API_KEY", "test-key")
    copies = {item["raw"]: ({"context": item["context"], "qas": item["qas"]}
                            if PIPELINES[item["pipeline"]].want_article else {"qas": item["qas"]})
              for item in items}
    rows = []
    with ChatServer(reformats=copies) as server, tempfile.TemporaryDirectory() as work:
        api = api_settings_for(server.base_url).__dict__
        for name, pipeline in PIPELINES.items():
            chosen = {str(n): item for n, item in enumerate(items) if item["pipeline"] == name}
            answers = {rid: {"answer": item["raw"], "generation": {"finish_reason": item["finish_reason"]}}
                       for rid, item in chosen.items()}
            parses = {rid: pipeline.parse(item["raw"], item["finish_reason"]) for rid, item in chosen.items()}
            before = {rid: score(chosen[rid], parsed) for rid, parsed in parses.items()}
            if honest:  # the parser's wrong ok made partial, as an accounting parser would
                parses = {rid: replace(parsed, status="partial", issues=("unread_text",))
                          if before[rid]["wrong_ok"] else parsed for rid, parsed in parses.items()}
            requests = ShardRequests(Path(work) / f"{name}.jsonl", {rid: int(rid) for rid in chosen}, False)
            backend = build_backend("api", Sampling(0.0, None, 2048, pipeline.answer_schema()), 1 << 20, api=api)
            reformat_answers(requests, answers, parses, pipeline, 0, backend)
            for rid, item in chosen.items():
                reformat = answers[rid]["generation"].get("reformat") or {}
                rows.append({"name": item["name"], "pipeline": name, "readable": item["readable"],
                             "finish_reason": item["finish_reason"], "parser": before[rid],
                             "reformat": reformat.get("status"), "reason": reformat.get("reason"),
                             "final": score(item, parses[rid])})
        asked = sum(server.stats["reformats"].values())
        images = server.stats["reformat_images"]
    rows.sort(key=lambda row: [item["name"] for item in items].index(row["name"]))

    def totals(key: str) -> dict:
        return {"right": sum(row[key]["right"] for row in rows), "wrong_ok": sum(row[key]["wrong_ok"] for row in rows),
                "ok": sum(row[key]["status"] == "ok" for row in rows), "items": len(rows)}

    return {"parser": totals("parser"), "parser_then_reformat": totals("final"),
            "reformat_requests": asked, "reformat_images": images,
            "accepted": sum(row["reformat"] == "accepted" for row in rows), "rows": rows}


def main() -> None:
    honest = "--honest" in sys.argv[1:]
    chosen = sys.argv[sys.argv.index("--set") + 1] if "--set" in sys.argv else "1"
    found = measure(json.loads((REPO / SETS[chosen]).read_text()), honest)
    for row in found["rows"]:
        mark = "right" if row["final"]["right"] else "WRONG OK" if row["final"]["wrong_ok"] else "wrong"
        print(f"{row['name'][:58]:58} {row['parser']['status']:7} -> {row['final']['status']:7} {mark:8} "
              f"{row['reformat'] or '':9} {row['reason'] or ''}"[:160])
    for key in ("parser", "parser_then_reformat"):
        t = found[key]
        print(f"{key}: {t['right']}/{t['items']} right ({t['right'] * 22 / t['items']:.1f}/22), "
              f"{t['wrong_ok']} wrong ok, {t['ok']} ok")
    print(f"reformat requests: {found['reformat_requests']} (images: {found['reformat_images']}), "
          f"accepted: {found['accepted']}")
    name = "results-heldout-reformat-honest.json" if honest else "results-heldout-reformat.json"
    name = name.replace("reformat", f"reformat-set{chosen}") if chosen != "1" else name
    (REPO / "bench" / name).write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
