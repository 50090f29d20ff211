"""The visual-dependency test of MCQs: upstream's prompts, rotations, letters and scores."""

import pytest

from vqaflow.pipelines.mcq import generate_prompts
from vqaflow.quality.mcq import (
    RIGHT_WITHOUT_IMAGE,
    WRONG_WITH_IMAGE,
    Rotation,
    accuracy,
    read_letter,
    rotations,
    score,
)

MCQ = {"question": "What color is the car?", "options": {"A": "Red", "B": "Blue", "C": "Green", "D": "Yellow"},
       "answer": "B"}


def test_upstream_prompts():
    system, user = generate_prompts({"questions": 5})
    assert system.startswith("Your task is to generate five multiple-choice questions and their answers about")
    assert "#### 1. **Question?**\n   - A) Option\n" in system and "**Answer:** A) Option\n------\n" in system
    assert system.endswith("All questions must be answerable from the image alone.")
    assert user == "Generate 5 MCQs based on the image."
    assert generate_prompts({"questions": 12})[0].startswith("Your task is to generate 12 multiple-choice")


def test_rotation_prompt_as_upstream():
    rotation = Rotation("What color is the car?", ("Green", "Blue", "Red", "Yellow", "None of the above"), "B")
    assert rotation.prompt == (
        "What color is the car?\n   - A) Green\n   - B) Blue\n   - C) Red\n   - D) Yellow\n"
        "   - E) None of the above\nAnswer the question with only the correct letter.")


@pytest.mark.parametrize("visual", [True, False])
def test_rotations_move_the_right_option_through_every_letter(visual):
    asked = rotations(MCQ, 4, seed=7, record_id="rec-1", index=0, visual=visual)
    assert sorted(rotation.answer for rotation in asked) == ["A", "B", "C", "D"]
    for rotation in asked:
        assert rotation.options["ABCDE".index(rotation.answer)] == "Blue"
        assert sorted(rotation.options[:4]) == ["Blue", "Green", "Red", "Yellow"]
        assert rotation.options[4:] == (("None of the above",) if visual else ())
        assert rotation.question == MCQ["question"]
    more = rotations(MCQ, 6, seed=7, record_id="rec-1", index=0, visual=visual)
    assert more[:4] == asked and [r.answer for r in more[4:]] == [r.answer for r in asked[:2]]


def test_rotations_are_deterministic_and_seeded():
    def orders(**changes):
        arguments = {"seed": 7, "record_id": "rec-1", "index": 0, "visual": True, **changes}
        return [rotation.options for rotation in rotations(MCQ, 4, **arguments)]
    assert orders() == orders()
    assert orders(seed=None) == orders(seed=None)
    for change in ({"seed": 8}, {"record_id": "rec-2"}, {"index": 1}):
        assert orders(**change) != orders()
    assert [o[:4] for o in orders(visual=False)] != [o[:4] for o in orders()]


ROTATION = Rotation("What color is the car?", ("Red", "Blue", "Green", "Yellow", "None of the above"), "B")


@pytest.mark.parametrize("answer, letter", [
    ("B", "B"), ("B.", "B"), ("(B)", "B"), ("[B]", "B"), ("**B**", "B"), ("b", "B"), (" B\n", "B"),
    ("Answer: B", "B"), ("The answer is B.", "B"), ("The correct answer is (B) Blue.", "B"), ("Option B", "B"),
    ("答案：B", "B"), ("B) Blue", "B"), ("B. blue", "B"), ("E) None of the above", "E"),
    ("<think>It could be A.</think>B", "B"),
    ("B) Red", None), ("I think B", None), ("B or C", None), ("Blue", None), ("F", None), ("", None),
    ("B\n\nExplanation: the car is blue.", None), ("a car", None), ("<think>B", None),
])
def test_read_letter(answer, letter):
    assert read_letter(answer, ROTATION) == letter


def test_a_blind_rotation_offers_no_e():
    blind = Rotation("What color is the car?", ("Red", "Blue", "Green", "Yellow"), "B")
    assert read_letter("E", blind) is None and read_letter("D", blind) == "D"


def _answered(rights: int, visual: bool) -> list[tuple[Rotation, str]]:
    asked = rotations(MCQ, 4, seed=1, record_id="r", index=0, visual=visual)
    return [(rotation, rotation.answer if n < rights else "E" if visual else "I don't know")
            for n, rotation in enumerate(asked)]


def test_accuracy_counts_only_the_right_letter():
    assert accuracy(_answered(3, True)) == 0.75
    asked = rotations(MCQ, 4, seed=1, record_id="r", index=0, visual=True)
    always_a = [(rotation, "A") for rotation in asked]
    assert accuracy(always_a) == 0.25


@pytest.mark.parametrize("visual, blind, reasons", [
    (4, 0, []),
    (4, 1, []),  # 0.25 is at most max_blind
    (3, 0, [WRONG_WITH_IMAGE]),
    (4, 2, [RIGHT_WITHOUT_IMAGE]),
    (0, 4, [WRONG_WITH_IMAGE, RIGHT_WITHOUT_IMAGE]),
])
def test_score_keeps_or_drops(visual, blind, reasons):
    item, why = score(MCQ, _answered(visual, True), _answered(blind, False), min_visual=1.0, max_blind=0.25)
    assert item == {**MCQ, "visual_accuracy": visual / 4, "blind_accuracy": blind / 4}
    assert why == reasons
