"""The finish stage on files: copies filled in order with their own input fields, copies of
failed or missing originals failed, repeated questions flagged across shards; the matching of
request keys."""

import json

from vqaflow.columns import Columns
from vqaflow.pipelines import pipeline
from vqaflow.stages.copies import match_requests
from vqaflow.stages.finish import finish
from workflow_helpers import COLUMNS

IMAGE_VQA = pipeline("image_vqa")


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def line(record_id, index, image, **fields):
    return {"id": record_id, "index": index, "record": {"id": record_id, "image": image, **fields}}


def finished(record_id, image, questions, **fields):
    return {"id": record_id, "image": image, "vqa": "raw answer", **fields,
            "qas": [{"question": q, "answer": "a", "flags": []} for q in questions],
            "parse": {"status": "ok", "issues": [], "truncated": False},
            "generation": {"prompt_tokens": 10, "completion_tokens": 5}}


def run(tmp_path, shards, stages, copies, failed=()):
    shard_paths = [write(tmp_path / f"shard-{n:05d}.jsonl", lines) for n, lines in enumerate(shards)]
    stage_paths = [write(tmp_path / f"stage-{n}.jsonl", rows) for n, rows in enumerate(stages)]
    final = [tmp_path / f"final-{n}.jsonl" for n in range(len(shards))]
    copies_path = write(tmp_path / "copies.jsonl", copies)
    failed_path = write(tmp_path / "generated.failed.jsonl", failed)
    counts = finish(stage_paths, shard_paths, final, tmp_path / "copies.failed.jsonl", [failed_path], copies_path,
                    IMAGE_VQA, COLUMNS)
    return [read(path) for path in final], read(tmp_path / "copies.failed.jsonl"), counts


def test_copies_are_filled_in_input_order_with_their_own_input_fields(tmp_path):
    shards = [[line("a", 0, "x.png", note="first"), line("b", 1, "y.png")],
              [line("c", 2, "z.png"), line("a2", 3, "x-again.png", note="second"), line("b2", 4, "y.png")]]
    stages = [[finished("a", "x.png", ["What is it?"], note="first"), finished("b", "y.png", ["Why?"])],
              [finished("c", "z.png", ["Who?"])]]
    copies = [{"id": "a2", "index": 3, "shard": "shard-00001", "duplicate_of": "a"},
              {"id": "b2", "index": 4, "shard": "shard-00001", "duplicate_of": "b"}]
    (first, second), failures, counts = run(tmp_path, shards, stages, copies)
    assert [r["id"] for r in first] == ["a", "b"] and [r["id"] for r in second] == ["c", "a2", "b2"]
    a2 = second[1]
    assert a2["note"] == "second" and a2["image"] == "x-again.png", "the copy's own input fields"
    assert a2["qas"][0]["question"] == "What is it?" and a2["generation"]["duplicate_of"] == "a"
    assert a2["vqa"] == "raw answer" and a2["parse"] == first[0]["parse"]
    # compared under its original's image (the same bytes under another name): a repeat
    assert a2["qas"][0]["flags"] == ["duplicate_question"] and second[2]["qas"][0]["flags"] == ["duplicate_question"]
    assert first[0]["qas"][0]["flags"] == [], "the original is not touched by its copies' flags"
    assert failures == [] and counts["copies_filled"] == 2 and counts["duplicate_question"] == 2


def test_a_copy_of_a_failed_or_missing_original_fails_with_it(tmp_path):
    shards = [[line("a", 0, "x.png"), line("b", 1, "y.png")], [line("a2", 2, "x.png"), line("b2", 3, "y.png")]]
    stages = [[], []]
    copies = [{"id": "a2", "index": 2, "shard": "shard-00001", "duplicate_of": "a"},
              {"id": "b2", "index": 3, "shard": "shard-00001", "duplicate_of": "b"}]
    failed = [{"id": "a", "index": 0, "error": "rejected: too long", "kind": "rejected", "attempts": 1,
               "transient": False, "failed_at": "2026-01-01T00:00:00Z"}]
    finals, failures, counts = run(tmp_path, shards, stages, copies, failed)
    assert finals == [[], []] and counts["copies_filled"] == 0
    assert failures[0] == {**failed[0], "id": "a2", "index": 2, "duplicate_of": "a"}
    assert failures[1]["id"] == "b2" and failures[1]["kind"] == "internal" and failures[1]["transient"]
    assert "b has no answer" in failures[1]["error"]


def test_repeated_questions_are_flagged_across_shards_without_copies(tmp_path):
    shards = [[line("a", 0, "x.png")], [line("b", 1, "x.png")], [line("c", 2, "y.png")]]
    stages = [[finished("a", "x.png", ["What color is the car?"])],
              [finished("b", "x.png", ["What is the color of the car?", "What color is the car"])],
              [finished("c", "y.png", ["What color is the car?"])]]
    finals, _, counts = run(tmp_path, shards, stages, [])
    assert [[qa["flags"] for qa in r["qas"]] for final in finals for r in final] == [
        [[]], [["near_duplicate_question"], ["duplicate_question"]], [[]]]
    assert counts == {"records": 3, "copies_filled": 0, "copies_failed": 0, "duplicate_question": 1,
                      "near_duplicate_question": 1}


def test_match_requests_names_the_first_record_of_each_request():
    lines = [{"id": i, "index": n, "shard": f"s{n // 2}", "key": key}
             for n, (i, key) in enumerate([("a", "k1"), ("b", "k2"), ("c", "k1"), ("d", None), ("e", None),
                                           ("f", "k2"), ("g", "k3"), ("h", "k3")])]
    assert list(match_requests(lines, skip=frozenset({"g"}))) == [
        {"id": "c", "index": 2, "shard": "s1", "duplicate_of": "a"},
        {"id": "f", "index": 5, "shard": "s2", "duplicate_of": "b"},
    ]


def test_output_fields_follow_the_columns():
    from vqaflow.stages.refine import output_fields

    columns = Columns.from_config({"id": "key", "image": "img", "conversation": "c", "answer": "raw",
                                   "refined": "ctx", "qas": "pairs"})
    assert output_fields(pipeline("context_vqa"), columns) == ("raw", "ctx", "parse", "generation", "verify", "blind")
    assert output_fields(IMAGE_VQA, columns) == ("raw", "pairs", "parse", "generation", "verify", "blind")
