"""Generation backends: each turns generation tasks into answers (or failures).

- ``api``: any OpenAI-compatible chat-completions endpoint, online and concurrent;
- ``batch``: the OpenAI Batch API at the batch price (``batch_state``, ``batch_recover``,
  ``batch_lines``, ``batch_submit`` hold its state file (a cache), finding its batches again
  in the provider's listing, its lines and its server calls);
- ``vllm``: vLLM's offline engine on the local GPUs.

``base`` holds the protocol every backend follows (:class:`~.base.Backend`, with
``GenerationTask``, ``Outcome``, ``Sampling`` and ``FatalBackendError``);
``openai_protocol`` the request body, completion reading and the one HTTP status
classification that ``api`` and ``batch`` share; ``ratelimit`` and ``tokens`` the online
rate limits and image-token meter. A backend is built from the settings in one place:
``_factory``.
"""
