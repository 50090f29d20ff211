"""The judge request text, the verdict schema and reading verdicts back onto pairs."""

import json

import pytest

from vqaflow.quality import judge

QAS = [
    {"question": "In which year was the lighthouse shown built?", "answer": "1890"},
    {"question": "What colour is the lantern room?", "answer": "red"},
    {"question": "How tall is the tower?", "answer": "30 metres"},
]


def test_judge_text_has_prompt_article_numbered_pairs_and_format():
    text = judge.judge_text(judge.JUDGE_PROMPT_WITH_ARTICLE, QAS, "The lighthouse was built in 1890.")
    assert text.startswith(judge.JUDGE_PROMPT_WITH_ARTICLE.strip())
    assert "Article:\nThe lighthouse was built in 1890." in text
    assert "1. Question: In which year was the lighthouse shown built?\n   Answer: 1890" in text
    assert "3. Question: How tall is the tower?\n   Answer: 30 metres" in text
    assert text.index("Article:") < text.index("1. Question") < text.index('"verdicts"')
    assert "exactly 3 verdicts, indexes 1 to 3" in text


def test_image_only_text_has_no_article_and_custom_prompt_replaces_default():
    text = judge.judge_text("Be strict about colours.", QAS[1:2], None)
    assert "Article:" not in text and judge.JUDGE_PROMPT_IMAGE_ONLY not in text
    assert text.startswith("Be strict about colours.")
    assert "1. Question: What colour is the lantern room?" in text and "exactly 1 verdict, index 1." in text


def test_default_prompts_differ_by_evidence():
    assert "article" in judge.JUDGE_PROMPT_WITH_ARTICLE.lower()
    assert "article" not in judge.JUDGE_PROMPT_IMAGE_ONLY.lower()
    assert "JSON" in judge.JUDGE_SYSTEM_PROMPT


def test_verdict_schema_is_strict():
    def check(node):
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert sorted(node["required"]) == sorted(node["properties"])
            for child in node["properties"].values():
                check(child)
        if node.get("type") == "array":
            check(node["items"])

    check(judge.VERDICT_SCHEMA)
    item = judge.VERDICT_SCHEMA["properties"]["verdicts"]["items"]["properties"]
    assert item["index"]["type"] == "integer" and item["answerable"]["type"] == "boolean"


def test_schema_validates_a_good_answer():
    jsonschema = pytest.importorskip("jsonschema")
    answer = {"verdicts": [{"index": 1, "reason": "Stated in the article.", "answerable": True, "correct": True}]}
    jsonschema.validate(answer, judge.VERDICT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"verdicts": [{"index": 1, "answerable": True, "correct": True}]}, judge.VERDICT_SCHEMA)


def good():
    return {"verdicts": [
        {"index": 1, "answerable": True, "correct": True, "reason": "The article gives 1890."},
        {"index": 2, "answerable": True, "correct": False, "reason": "The lantern room is black."},
        {"index": 3, "answerable": False, "correct": False, "reason": "The height is not given."},
    ]}


def test_good_answer():
    verdicts, issues = judge.read_verdicts(good(), 3)
    assert issues == []
    assert verdicts[1] == {"answerable": True, "correct": False, "reason": "The lantern room is black."}
    assert [judge.accepted(v) for v in verdicts] == [True, False, False]


def test_order_of_verdicts_does_not_matter():
    data = good()
    data["verdicts"].reverse()
    assert judge.read_verdicts(data, 3) == judge.read_verdicts(good(), 3)


def test_missing_verdict_is_none_never_guessed():
    data = good()
    del data["verdicts"][1]
    verdicts, issues = judge.read_verdicts(data, 3)
    assert verdicts[1] is None and verdicts[0]["correct"] and verdicts[2] is not None
    assert issues == ["missing_verdicts"]
    assert judge.accepted(None) is False


def test_extra_verdicts_are_ignored():
    data = good()
    data["verdicts"].append({"index": 4, "answerable": True, "correct": True, "reason": "?"})
    verdicts, issues = judge.read_verdicts(data, 3)
    assert issues == ["extra_verdicts"] and len(verdicts) == 3 and all(verdicts)


def test_zero_based_indexes_are_shifted_and_flagged():
    data = good()
    for verdict in data["verdicts"]:
        verdict["index"] -= 1
    verdicts, issues = judge.read_verdicts(data, 3)
    assert issues == ["zero_based"]
    assert verdicts == judge.read_verdicts(good(), 3)[0]


def test_index_zero_without_a_full_zero_based_run_is_bad():
    data = {"verdicts": [{"index": 0, "answerable": True, "correct": True, "reason": ""},
                         {"index": 1, "answerable": True, "correct": True, "reason": ""}]}
    verdicts, issues = judge.read_verdicts(data, 3)  # 0..1 is not 0..2: not clearly 0-based
    assert verdicts == [{"answerable": True, "correct": True, "reason": ""}, None, None]
    assert "bad_index" in issues and "missing_verdicts" in issues and "zero_based" not in issues


def test_string_booleans_string_indexes_and_missing_reason():
    data = [
        {"Index": "1", "answerable": "yes", "correct": "True"},
        {"index": "Q2", "answerable": "no", "correct": "false", "reason": "Not visible."},
        {"index": 3.0, "is_answerable": 1, "is_correct": 0, "explanation": "Wrong unit."},
    ]
    verdicts, issues = judge.read_verdicts(data, 3)
    assert verdicts == [
        {"answerable": True, "correct": True, "reason": ""},
        {"answerable": False, "correct": False, "reason": "Not visible."},
        {"answerable": True, "correct": False, "reason": "Wrong unit."},
    ]
    assert issues == ["missing_reason"]


def test_unreadable_boolean_leaves_the_pair_without_verdict():
    data = good()
    data["verdicts"][0]["correct"] = "partly"
    verdicts, issues = judge.read_verdicts(data, 3)
    assert verdicts[0] is None and issues == ["bad_value", "missing_verdicts"]


def test_bad_index_is_ignored():
    data = good()
    data["verdicts"][2]["index"] = "the third"
    verdicts, issues = judge.read_verdicts(data, 3)
    assert verdicts[2] is None and issues == ["bad_index", "missing_verdicts"]


def test_no_indexes_use_order_only_when_the_count_matches():
    data = [{k: v for k, v in verdict.items() if k != "index"} for verdict in good()["verdicts"]]
    verdicts, issues = judge.read_verdicts(data, 3)
    assert issues == ["missing_index"] and verdicts == judge.read_verdicts(good(), 3)[0]
    verdicts, issues = judge.read_verdicts(data[:2], 3)
    assert verdicts == [None, None, None] and issues == ["missing_index", "missing_verdicts"]


def test_conflicting_duplicates_leave_the_pair_without_verdict():
    data = good()
    data["verdicts"].append({"index": 1, "answerable": False, "correct": False, "reason": "Changed my mind."})
    verdicts, issues = judge.read_verdicts(data, 3)
    assert verdicts[0] is None and issues == ["duplicate_index", "missing_verdicts"]
    data = good()
    data["verdicts"].append(dict(data["verdicts"][0]))
    verdicts, issues = judge.read_verdicts(data, 3)
    assert verdicts[0]["correct"] and issues == ["duplicate_index"]


@pytest.mark.parametrize("data", [None, "The pairs look fine.", 42, True])
def test_not_json(data):
    assert judge.read_verdicts(data, 2) == ([None, None], ["not_json", "missing_verdicts"])


@pytest.mark.parametrize("data", [{"summary": "all good"}, {"verdicts": "all good"}, {}])
def test_json_without_verdicts(data):
    assert judge.read_verdicts(data, 2) == ([None, None], ["bad_shape", "missing_verdicts"])


def test_other_shapes():
    single = {"index": 1, "answerable": True, "correct": True, "reason": "ok"}
    assert judge.read_verdicts(single, 1) == ([{"answerable": True, "correct": True, "reason": "ok"}], [])
    keyed = {"1": {"answerable": True, "correct": True, "reason": "ok"},
             "2": {"answerable": True, "correct": False, "reason": "no"}}
    verdicts, issues = judge.read_verdicts(keyed, 2)
    assert issues == [] and [v["correct"] for v in verdicts] == [True, False]
    results = {"results": [{"pair": 1, "answerable": True, "correct": True, "rationale": "ok"}]}
    assert judge.read_verdicts(results, 1)[0][0]["reason"] == "ok"
    assert judge.read_verdicts(["junk", single], 1) == ([{"answerable": True, "correct": True, "reason": "ok"}],
                                                      ["bad_verdict"])


def test_round_trip_through_json_text():
    text = json.dumps(good())
    assert judge.read_verdicts(json.loads(text), 3) == judge.read_verdicts(good(), 3)


def test_no_pairs():
    assert judge.read_verdicts({"verdicts": []}, 0) == ([], [])
    assert judge.read_verdicts(good(), 0) == ([], ["extra_verdicts"])


def test_default_prompt_per_pipeline():
    from vqaflow.pipelines import PIPELINES

    assert PIPELINES["context_vqa"].judge_prompt is judge.JUDGE_PROMPT_WITH_ARTICLE
    assert PIPELINES["image_vqa"].judge_prompt is judge.JUDGE_PROMPT_IMAGE_ONLY
    assert PIPELINES["image_qa"].judge_prompt is judge.JUDGE_PROMPT_IMAGE_ONLY
