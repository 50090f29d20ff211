"""Questions over the whole dataset: repeats on one image, templates, diversity."""

import pytest

from vqaflow.quality import questions, text


def pairs(*asked: str) -> list[dict]:
    return [{"question": question, "answer": "x", "flags": []} for question in asked]


def flag_all(records: list[tuple[str | None, list[dict]]], **kwargs) -> list[list[list[str]]]:
    """Flag records given as (image, pairs) in order; the flags of every pair."""
    repeats = questions.QuestionRepeats(questions.QuestionRepeats.count(image for image, _ in records), **kwargs)
    for image, qas in records:
        repeats.flag(image, qas)
    return [[qa["flags"] for qa in qas] for _, qas in records]


def test_repeats_on_one_image_are_flagged_on_the_later_occurrence():
    records = [
        ("car.jpg", pairs("What color is the car?", "How many wheels does it have?")),
        ("car.jpg", pairs("What is the color of the car?", "What color is the house?", "How many wheels does it have")),
        ("house.jpg", pairs("What color is the car?")),  # another image: the same question is fine
        ("sky.jpg", pairs("汽车是什么颜色？", "汽车是什么颜色的？", "天空是什么颜色？")),
        (None, pairs("What color is the car?", "What is the color of the car?")),
    ]
    assert flag_all(records) == [
        [[], []],
        [["near_duplicate_question"], [], ["duplicate_question"]],
        [[]],
        [[], ["near_duplicate_question"], []],
        [[], ["near_duplicate_question"]],  # no image: only its own pairs
    ]


def test_an_exact_repeat_in_its_own_record_keeps_its_rule_flag_only():
    qas = pairs("What is shown?", "what is shown")
    qas[1]["flags"] = ["duplicate_question"]  # the rule filters' flag
    assert flag_all([("a.png", qas)]) == [[[], ["duplicate_question"]]]


def test_threshold_and_jaccard():
    records = [("a.png", pairs("What color is the car?")), ("a.png", pairs("What color is the house?"))]
    assert flag_all(records) == [[[]], [[]]]
    records = [("a.png", pairs("What color is the car?")), ("a.png", pairs("What color is the house?"))]
    assert flag_all(records, threshold=0.6) == [[[]], [["near_duplicate_question"]]]
    assert questions.jaccard(text.question_tokens("What color is the car?"),
                             text.question_tokens("What is the color of the car?")) == pytest.approx(5 / 6)


def test_only_images_with_several_records_are_remembered_and_only_until_their_last():
    images = ["a", "b", "a", "c", "a", "b"]
    repeats = questions.QuestionRepeats(questions.QuestionRepeats.count(images))
    assert sorted(repeats.remaining.values()) == [2, 3]  # "c" is not held at all
    held = []
    for image in images:
        repeats.flag(image, pairs("What is it?"))
        held.append(len(repeats.seen))
    assert held == [1, 2, 2, 2, 1, 0]
    assert repeats.flagged == {"duplicate_question": 3}


@pytest.mark.parametrize("question, shape", [
    ("What color is the red car?", "what color is the _"),
    ("What colour is the old house?", "what colour is the _"),
    ("How many people are in the image?", "how many _ are in the _"),
    ("Who is holding the umbrella?", "who is holding the _"),
    ("What year is shown on the 2 plaques?", "what year is shown on the # _"),
    ("What does John hold?", "what does _ hold"),
    ('What is the price of "Super Soap"?', "what is the _ of _"),
    ("Can I park here?", "can i park here"),
    ("图中有3个人吗？", "图中有#个人吗"),
])
def test_template_masks_what_changes_from_image_to_image(question, shape):
    assert questions.template(question) == shape


def test_diversity_counts_distinct_questions_and_top_templates():
    diversity = questions.Diversity()
    asked = (["What color is the car?", "what color is the car", "What color is the bus?", "How many dogs are there?",
              "Where was the photo taken?", ""])
    for question in asked:
        diversity.add(question)
    stats = diversity.stats(top=2)
    assert stats["questions"] == 5 and stats["unique_questions"] == 4 and stats["unique_share"] == 0.8
    assert stats["top_templates"] == [{"template": "what color is the _", "count": 3, "share": 0.6},
                                      {"template": "how many _ are there", "count": 1, "share": 0.2}]
    assert stats["templates_exact"]


def test_template_counts_stay_bounded_and_keep_the_heavy_ones():
    diversity = questions.Diversity(slots=50)
    for n in range(2000):
        word = "".join(chr(ord("a") + int(digit)) for digit in str(n))  # a distinct word, no digits
        diversity.add("What color is the car?" if n % 3 == 0 else f"Why {word} please?")
    stats = diversity.stats(top=1)
    assert len(diversity.templates) <= 50 and not stats["templates_exact"]
    top = stats["top_templates"][0]
    assert top["template"] == "what color is the _"
    assert 667 - 2000 / 51 <= top["count"] <= 667  # Misra-Gries: low by at most questions / (slots + 1)
    assert stats["unique_questions"] == 1 + 2000 - 667


@pytest.mark.parametrize("question", ["What's the colour of the café's door?", "Wie heißt die Straße?",
                                      "How many 2-door cars, e.g. Fiats?", "这辆车是 Tesla 吗？", "Ünïcödé  ‘quoted’ text"])
def test_word_tokens_of_a_key_are_the_question_tokens(question):
    assert questions._tokens(text.question_key(question)) == text.question_tokens(question)
