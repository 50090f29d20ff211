"""The seed pipelines: one request with the record's images, its answer parsed into pairs (after
an article for ``context_vqa``). Their requests and fingerprints are those of every earlier
version, so their journals stay valid."""

from __future__ import annotations

from .base import Pipeline, Step, qa_schema

SKVQA_PROMPT = (
    "Write a Wikipedia article related to this image without directly referring to the "
    "image. Then write question answer pairs. The question answer pairs should satisfy the "
    "following criteria.\n"
    "1: The question should refer to the image.\n"
    "2: The question should avoid mentioning the name of the object in the image.\n"
    "3: The question should be answered by reasoning over the Wikipedia article.\n"
    "4: The question should sound natural and concise.\n"
    "5: The answer should be extracted from the Wikipedia article.\n"
    "6: The answer should not be any objects in the image.\n"
    "7: The answer should be a single word or phrase and list all correct answers "
    "separated by commas.\n"
    "8: The answer should not contain 'and', 'or', rather you can split them into "
    "multiple answers."
)
ASSISTANT_SYSTEM_PROMPT = "You are a helpful assistant."
IMAGE_QA_SYSTEM_PROMPT = (
    "You are a image question-answer generator. Your task is to generate a "
    "question-answer pair for the given image content."
)
IMAGE_VQA_PROMPT = (
    "Write question answer pairs about the content of this image: the objects, their "
    "attributes, counts, positions, any visible text and the scene as a whole. Each "
    "question must be answerable from the image alone. Write each pair as\n"
    "Question: ...\nAnswer: ..."
)
IMAGE_QA_PROMPT = (
    "Generate one question-answer pair about this image. Write it as\n"
    "Question: ...\nAnswer: ..."
)


def one_step(name: str, system_prompt: str, prompt: str, want_article: bool, about: str) -> Pipeline:
    """A pipeline of one request with the record's images, parsed into pairs (and an article)."""
    return Pipeline(name, (Step("generate", system_prompt, prompt, True, qa_schema(want_article)),), want_article,
                    about=about)


CONTEXT_VQA = one_step("context_vqa", ASSISTANT_SYSTEM_PROMPT, SKVQA_PROMPT, True,
                       "an article about the image, then pairs answerable from it")
IMAGE_VQA = one_step("image_vqa", ASSISTANT_SYSTEM_PROMPT, IMAGE_VQA_PROMPT, False,
                     "question-answer pairs about the image")
IMAGE_QA = one_step("image_qa", IMAGE_QA_SYSTEM_PROMPT, IMAGE_QA_PROMPT, False,
                    "one question-answer pair about the image")
