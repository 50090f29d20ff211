"""The test server's answers to ScaleCap's prompts (tests/chat_server.py), recognised by their words.

A caption of four sentences, one of them (the dragon) unsupported: its check answers "No.", the
last naming the image's size (so each image's later requests differ);
one instruction per known object in the golden sentences; a detail per question, the kitchen's
position a generic one whose check answers "No."; a fixed fused caption. Deterministic, so a
test knows what every record must end with.
"""

from __future__ import annotations

import re

CAPTION = "A man stands in a kitchen. A dragon flies above him. A red sign reads EXIT."
OBJECTS = ("man", "kitchen", "dragon", "sign")
DETAILS = {"man": "He wears a blue apron.", "kitchen": "It has white tiles.", "dragon": "It is green.",
           "sign": "It is red with white letters."}
GENERIC = "The kitchen is everywhere."
FINAL = "A man in a blue apron stands on the left of a white-tiled kitchen under a red EXIT sign."
QUESTION = re.compile(r"Describe more details about the (position of the )?(\w+)\.")
QUOTED = re.compile(r"'(.*)'", re.S)


def _detail(text: str) -> str:
    position, name = QUESTION.search(text).groups()
    if position:
        return GENERIC if name == "kitchen" else f"The {name} is on the left."
    return DETAILS.get(name, "It is plain.")


def _instructions(text: str) -> str:
    sentences = text.rsplit("Sentence:\n", 1)[1].split("Instructions:")[0]
    named = [name for name in OBJECTS if re.search(rf"\b{name}\b", sentences)]
    return "\n".join(f"Describe more details about the {name}." for name in named)


def scalecap_answer(text: str, sizes: list[str]) -> tuple[str, str] | None:
    """The kind of a ScaleCap request (``caption``, ``sentence_check``, ``questions``, ``detail``,
    ``detail_check``, ``fusion``) and its answer, from all its text and the sizes of the images it
    carried; None for any other request."""
    if "Describe the fine-grained content of the image" in text:
        return "caption", f"{CAPTION} The photo measures {', '.join(sizes) or 'nothing'}."
    if "directly supported by visual evidence?" in text:
        return "sentence_check", "No." if "dragon" in QUOTED.search(text).group(1) else "Yes."
    if "convert each Object mentioned in a given sentence" in text:
        return "questions", _instructions(text)
    if "grounded in the image and not generic?" in text:
        return "detail_check", "No." if GENERIC in text else "Yes"
    if "Basic Context:\n" in text and "Position Information:\n" in text:
        return "fusion", FINAL
    if QUESTION.fullmatch(text.strip().splitlines()[-1]):
        return "detail", _detail(text)
    return None
