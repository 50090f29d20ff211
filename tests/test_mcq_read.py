"""Reading MCQs from a model's answer: the shapes models write, and an honest status."""

import json

import pytest

from vqaflow.quality.mcq_read import MCQ_SCHEMA, answer_letter, parse_mcqs

CAR = {"question": "What color is the car?", "options": {"A": "Red", "B": "Blue", "C": "Green", "D": "Yellow"},
       "answer": "B"}
PEOPLE = {"question": "How many people are visible?", "options": {"A": "One", "B": "Two", "C": "Three", "D": "Four"},
          "answer": "C"}

UPSTREAM = """#### 1. **What color is the car?**
   - A) Red
   - B) Blue
   - C) Green
   - D) Yellow

**Answer:** B) Blue
------
#### 2. **How many people are visible?**
   - A) One
   - B) Two
   - C) Three
   - D) Four

**Answer:** C) Three
------
"""

SHAPES = {
    "upstream markdown": UPSTREAM,
    "numbered, inline options and answer": (
        "Sure! Here are the questions:\n\n"
        "1. What color is the car? A) Red B) Blue C) Green D) Yellow Answer: B\n"
        "2. How many people are visible?\nA. One\nB. Two\nC. Three\nD. Four\nAnswer: C\n"),
    "labelled, answer on the next line, explanation, chatter": (
        "### Multiple-choice questions\n\n"
        "**Question 1**\nWhat color is the car?\nOptions:\n- **A.** Red\n- **B.** Blue\n- **C.** Green\n"
        "- **D.** Yellow\n**Answer:**\nB\nExplanation: the car is clearly blue\nin the middle of the picture.\n\n"
        "**Question 2:** How many people are visible?\n(A) One (B) Two (C) Three (D) Four\n"
        "**Correct answer:** (C) Three\n\nI hope these help!"),
    "answer key at the end": (
        "Q1: What color is the car?\na) Red\nb) Blue\nc) Green\nd) Yellow\n\n"
        "Q2: How many people are visible?\na) One\nb) Two\nc) Three\nd) Four\n\nAnswers: 1. B, 2. c"),
    "answer key lines": (
        "1. What color is the car?\n(A) Red\n(B) Blue\n(C) Green\n(D) Yellow\n"
        "2. How many people are visible?\n(A) One\n(B) Two\n(C) Three\n(D) Four\n\nAnswer key:\n1 - B\n2 - Three"),
    "answer by its text": (
        "1. What color is the car?\nA) Red\nB) Blue\nC) Green\nD) Yellow\nAnswer: Blue\n\n"
        "2. How many people are visible?\nA) One\nB) Two\nC) Three\nD) Four\nAnswer: (C)"),
    "schema JSON": json.dumps({"mcqs": [CAR, PEOPLE]}),
    "fenced JSON list, labelled options": (
        "Here you go:\n```json\n" + json.dumps([
            {"question": CAR["question"], "options": ["A) Red", "B) Blue", "C) Green", "D) Yellow"],
             "answer": "B) Blue", "explanation": "it is blue"},
            {"question": PEOPLE["question"], "A": "One", "B": "Two", "C": "Three", "D": "Four", "answer": "Three"},
        ]) + "\n```"),
    "reasoning before the answer": "<think>Let me look at the car... A) maybe?</think>\n" + UPSTREAM,
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_reads_both_mcqs(shape):
    parsed = parse_mcqs(SHAPES[shape], questions=2)
    assert parsed.mcqs == [CAR, PEOPLE]
    assert (parsed.status, parsed.issues, parsed.unread) == ("ok", (), ())


def test_a_stem_over_two_lines():
    parsed = parse_mcqs("1. Look at the street.\nWhat color is the car?\nA) Red\nB) Blue\nC) Green\nD) Yellow\n"
                        "Answer: B", questions=1)
    assert parsed.mcqs == [{**CAR, "question": "Look at the street. What color is the car?"}]
    assert parsed.status == "ok"


def test_chinese_labels():
    text = ("问题1：图中汽车是什么颜色？\nA．红色\nB．蓝色\nC．绿色\nD．黄色\n答案：B\n\n"
            "第2题：图中有几个人？\nA、一个\nB、两个\nC、三个\nD、四个\n正确答案：D")
    parsed = parse_mcqs(text, questions=2)
    assert parsed.status == "ok"
    assert parsed.mcqs[0] == {"question": "图中汽车是什么颜色？",
                              "options": {"A": "红色", "B": "蓝色", "C": "绿色", "D": "黄色"}, "answer": "B"}
    assert parsed.mcqs[1]["answer"] == "D"


GOOD = "1. What color is the car? A) Red B) Blue C) Green D) Yellow Answer: B\n"


@pytest.mark.parametrize("bad, issue", [
    ("2. Which animal? A) Cat B) Dog C) Bird Answer: B", "incomplete_mcq"),
    ("2. Which animal? A) Cat B) Dog C) Bird D) Fish", "incomplete_mcq"),
    ("2. A) Cat B) Dog C) Bird D) Fish Answer: A", "incomplete_mcq"),
    ("2. Which animal? A) Cat B) Dog C) Cat D) Fish Answer: A", "bad_options"),
    ("2. Which animal? A) Cat B) Dog C) Bird D) None of the above Answer: A", "bad_options"),
    ("2. Which animal? A) Cat B) Dog C) Bird D) Fish E) Cow Answer: A", "bad_options"),
    ("2. Which animal?\nA) Cat\nB) Dog\nB) Bird\nC) Fish\nD) Cow\nAnswer: A", "bad_options"),
    ("2. Which animal? A) Cat B) Dog C) Bird D) Fish Answer: E", "bad_answer"),
    ("2. Which animal? A) Cat B) Dog C) Bird D) Fish Answer: B) Cat", "bad_answer"),
    ("2. Which animal? A) Cat B) Dog C) Bird D) Fish Answer: B (because it barks)", "bad_answer"),
    ("2. Which animal? A) Cat B) Dog C) Bird D) Fish Answer: a horse", "bad_answer"),
    ("2. What color is the car? A) Yellow B) Red C) Blue D) Green Answer: C", "duplicate_mcq"),
])
def test_an_mcq_not_read_completely_is_dropped_and_said(bad, issue):
    parsed = parse_mcqs(GOOD + bad, questions=1)
    assert parsed.mcqs == [CAR]
    assert parsed.status == "partial"
    assert issue in parsed.issues


def test_unread_text_is_shown():
    parsed = parse_mcqs(GOOD + "The picture was taken at dusk, which explains the light.", questions=1)
    assert parsed.mcqs == [CAR]
    assert (parsed.status, parsed.issues) == ("partial", ("unread_text",))
    assert parsed.unread == ("The picture was taken at dusk, which explains the light.",)


def test_text_after_the_options_is_unread():
    parsed = parse_mcqs("1. What color is the car?\nA) Red\nB) Blue\nC) Green\nD) Yellow\nThe car is parked.\n"
                        "Answer: B", questions=1)
    assert parsed.mcqs == [CAR] and parsed.unread == ("The car is parked.",)


def test_unknown_json_keys_are_unread():
    parsed = parse_mcqs(json.dumps({"mcqs": [{**CAR, "difficulty": "hard"}]}), questions=1)
    assert parsed.mcqs == [CAR] and parsed.unread == ("difficulty: hard",) and parsed.status == "partial"


@pytest.mark.parametrize("options", [
    {"a": "Red", "b": "Blue", "c": "Green", "d": "Yellow"},
    {"option_a": "Red", "Option B": "Blue", "(C)": "Green", "D.": "Yellow"},
    [{"label": "A", "text": "Red"}, {"label": "B", "text": "Blue"}, {"label": "C", "text": "Green"},
     {"label": "D", "text": "Yellow"}],
])
def test_json_option_forms(options):
    parsed = parse_mcqs(json.dumps([{"question": CAR["question"], "options": options, "answer": "b"}]), questions=1)
    assert (parsed.mcqs, parsed.status) == ([CAR], "ok")


@pytest.mark.parametrize("options, issue", [
    (["Red", "Blue", "Green", "Yellow", "Pink"], "bad_options"),
    ({"A": "Red", "a": "Blue", "B": "Blue", "C": "Green", "D": "Yellow"}, "bad_options"),
    ({"A": "Red", "B": ["Blue"], "C": "Green", "D": "Yellow"}, "bad_options"),
    (["Red", "Blue", "Green"], "incomplete_mcq"),
])
def test_json_options_not_read_drop_the_mcq(options, issue):
    parsed = parse_mcqs(json.dumps([CAR, {"question": "Which animal?", "options": options, "answer": "A"}]),
                        questions=1)
    assert parsed.mcqs == [CAR] and issue in parsed.issues and parsed.status == "partial"


def test_counts_are_checked():
    fewer = parse_mcqs(GOOD, questions=5)
    assert (fewer.mcqs, fewer.status, fewer.issues) == ([CAR], "partial", ("fewer_mcqs",))
    extra = parse_mcqs(UPSTREAM, questions=1)
    assert (extra.mcqs, extra.status, extra.issues) == ([CAR], "partial", ("extra_mcqs",))


def test_nothing_read_is_none():
    parsed = parse_mcqs("I'm sorry, I cannot see any image.", questions=5)
    assert (parsed.mcqs, parsed.status, parsed.issues) == ([], "none", ("no_mcqs",))
    parsed = parse_mcqs("The image shows a street with a blue car.", questions=5)
    assert (parsed.status, parsed.issues) == ("none", ("no_mcqs", "unread_text"))
    assert parse_mcqs("", questions=5).issues == ("no_mcqs",)


def test_cut_off_by_max_tokens():
    cut = parse_mcqs(UPSTREAM[:UPSTREAM.index("C) Three\n")], questions=2, finish_reason="length")
    assert cut.mcqs == [CAR] and cut.truncated
    assert cut.issues[0] == "truncated" and "incomplete_mcq" in cut.issues and cut.status == "partial"


def test_cut_json_drops_its_open_last_item():
    text = json.dumps({"mcqs": [CAR, {**PEOPLE, "answer": "C"}]})
    cut = parse_mcqs(text[:text.index('"Four"') + 4], questions=2)  # cut inside option D's text
    assert cut.mcqs == [CAR] and cut.truncated
    assert {"partial_json", "incomplete_mcq"} <= set(cut.issues)
    closed = parse_mcqs(text[:text.rindex("]")], questions=2)  # cut after the last item closed
    assert closed.mcqs == [CAR, PEOPLE] and closed.issues == ("partial_json",)


def test_schema_is_strict():
    """OpenAI's strict mode: every object lists all its properties as required, no others."""
    def objects(schema):
        if schema.get("type") == "object":
            yield schema
        for value in schema.get("properties", {}).values():
            yield from objects(value)
        if "items" in schema:
            yield from objects(schema["items"])
    found = list(objects(MCQ_SCHEMA))
    assert len(found) == 3
    for schema in found:
        assert schema["additionalProperties"] is False and schema["required"] == list(schema["properties"])
    assert MCQ_SCHEMA["properties"]["mcqs"]["items"]["properties"]["answer"]["enum"] == ["A", "B", "C", "D"]


@pytest.mark.parametrize("answer, letter", [
    ("B", "B"), ("b", "B"), ("(B)", "B"), ("B.", "B"), ("B) Blue", "B"), ("B - blue", "B"), ("Blue", "B"),
    ("B. Blue. Explanation: it is blue", "B"), ("B) Red", None), ("E", None), ("Blu", None), ("", None),
])
def test_answer_letter(answer, letter):
    assert answer_letter(answer, CAR["options"]) == letter
