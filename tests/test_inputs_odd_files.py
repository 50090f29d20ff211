"""Odd files fail alone and for good: special files in a folder are skipped with a warning,
a symlink loop, an empty file and an image with neither bytes nor path are `image`
failures of their own record, and a failed split leaves no temporary shard."""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

from vqaflow import images
from vqaflow.inputs.shards import write_shards
from vqaflow.inputs.specs import InputError, image_files
from vqaflow.requests import PERMANENT_KINDS
from vqaflow.settings import prompt_settings
from vqaflow.stages.generate import _safe_prepare
from workflow_helpers import COLUMNS, DEMO_IMAGES, schema_defaults


def odd_folder(root):
    root.mkdir()
    shutil.copy(DEMO_IMAGES / "sunset.jpg", root / "good.jpg")
    os.mkfifo(root / "fifo.png")
    (root / "loop.png").symlink_to(root / "loop.png")
    (root / "empty.png").write_bytes(b"")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(root / "sock.jpg"))
    return listener


def test_special_files_are_skipped_with_a_warning(tmp_path, capsys):
    listener = odd_folder(tmp_path / "photos")
    try:
        assert image_files(tmp_path / "photos") == ["empty.png", "good.jpg", "loop.png"]
    finally:
        listener.close()
    err = capsys.readouterr().err
    assert "fifo.png: not a regular file" in err and "sock.jpg: not a regular file" in err


@pytest.mark.parametrize("name", ["loop.png", "empty.png", "fifo.png"])
def test_unusable_image_files_are_image_errors_at_once(tmp_path, name):
    listener = odd_folder(tmp_path / "photos")
    try:
        with pytest.raises(images.ImageError, match=name):
            images.digest(images.resolve(name, tmp_path / "photos"))
    finally:
        listener.close()


def settings(pipeline="image_vqa"):
    return prompt_settings({**schema_defaults(), "pipeline": pipeline})


@pytest.mark.parametrize("image", [{"bytes": None, "path": None}, {"bytes": b"", "path": ""}, {"path": None}])
def test_image_with_neither_bytes_nor_path_is_a_permanent_image_failure(image):
    line = {"id": "a", "index": 0, "record": {"id": "a", "image": image}}
    result, error = _safe_prepare(line, settings())
    assert result is None and error[0] == "image" and "neither bytes nor path" in error[1]
    assert error[0] in PERMANENT_KINDS


def test_symlink_loop_is_a_permanent_image_failure_not_internal(tmp_path):
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    line = {"id": "a", "index": 0, "record": {"id": "a", "image": str(tmp_path / "loop.png")}}
    _, error = _safe_prepare(line, settings())
    assert error[0] == "image" and "loop.png" in error[1]


def test_failed_split_leaves_no_temporary_shard(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a"}) + "\n" + '{"id": "b"\n')
    shards = [tmp_path / "shards" / f"shard-{n:05d}.jsonl" for n in range(2)]
    with pytest.raises(InputError, match="in.jsonl:2"):
        write_shards(source, shards, 1, COLUMNS)
    assert list((tmp_path / "shards").iterdir()) == []
