"""Generation backends: an OpenAI-compatible API and vLLM's offline engine."""
