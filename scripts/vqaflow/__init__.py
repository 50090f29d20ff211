"""vqaflow: visual-question-answering data from images with vision-language models."""

__version__ = "0.1.0"
