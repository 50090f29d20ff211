"""How many tokens a request will cost, for the tokens-per-minute limit.

Text is estimated at 4 characters a token. Images cost what the endpoint says they cost:
:class:`ImageTokens` starts from a prior (the preview's measured mean, or a fixed guess)
and becomes the running mean of ``(prompt_tokens - text estimate) / images`` over the
answers of the job (:func:`image_token_meter`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .base import GenerationTask

IMAGE_TOKEN_ESTIMATE = 800  # the guess before anything is measured


def text_tokens(task: GenerationTask) -> int:
    """The text of a request in tokens, estimated at 4 characters a token."""
    prompt = task.prompt
    return (sum(len(text) for _, text in prompt.turns) + len(prompt.system or "")) // 4


class ImageTokens:
    """The running mean of prompt tokens per image.

    ``prior`` counts as ``weight`` images already measured (a weight of 0: the first answer
    replaces the guess)."""

    def __init__(self, prior: float = IMAGE_TOKEN_ESTIMATE, weight: int = 0):
        self.total = float(prior) * weight
        self.images = weight
        self.prior = float(prior)

    @property
    def mean(self) -> float:
        return self.total / self.images if self.images else self.prior

    def observe(self, task: GenerationTask, prompt_tokens: int | None) -> None:
        """Count an answered request's image tokens: its prompt tokens minus its text."""
        n_images = len(task.prompt.images)
        if not n_images or not isinstance(prompt_tokens, int) or isinstance(prompt_tokens, bool):
            return
        self.total += max(0, prompt_tokens - text_tokens(task))
        self.images += n_images

    def estimate(self, task: GenerationTask, max_tokens: int) -> int:
        """What a request may cost: text, images and the longest answer."""
        return text_tokens(task) + round(self.mean * len(task.prompt.images)) + max_tokens


def image_tokens(estimate_path: str | Path) -> tuple[float, int] | None:
    """The preview's measured prompt tokens per image and how many images it measured,
    or None (no preview, or nothing measured)."""
    path = Path(estimate_path)
    if not path.exists():
        return None
    try:
        measured = json.loads(path.read_text(encoding="utf-8"))["measured"]
        mean, images = measured["image_tokens_per_image"]["mean"], measured["images_measured"]
    except (ValueError, KeyError, TypeError) as err:
        print(f"{path}: ignoring an unreadable preview estimate ({err})", file=sys.stderr)
        return None
    return (float(mean), int(images)) if mean is not None and images else None


def image_token_meter(estimate_path: str | Path) -> ImageTokens:
    """The rate limiter's prompt tokens per image for a generate job: the preview's measured
    mean when ``estimate_path`` exists (weighted by the images it measured), else the fixed
    guess; the job's own answers update it either way."""
    measured = image_tokens(estimate_path)
    if measured is None:
        print(f"image tokens: {IMAGE_TOKEN_ESTIMATE} per image until answers measure them "
              f"(no preview at {estimate_path})", file=sys.stderr)
        return ImageTokens()
    print(f"image tokens: {measured[0]:.0f} per image, measured by the preview on {measured[1]} images",
          file=sys.stderr)
    return ImageTokens(*measured)
