"""The input's manifest: its record count, file list (folder inputs) and shard plan, worked
out once per version of the input and read by every later parse of the Snakefile (each
cluster job parses it again) instead of the input.

``results/<run>/manifest/input.json`` holds the plan and the *stamp* it was made from; a
folder input's image list is beside it in ``files.jsonl`` (one JSON string a line, for the
split job). Whether the input is still the one planned is checked cheaply:

- a file or a glob: the files the spec names now (a glob is listed again: one directory
  listing, no file read) and each file's size and mtime, against the stamp;
- a folder of images: the mtime of every directory walked when planning, one ``stat``
  each, no listing. A folder's records are its image paths, and that list changes only when
  an entry is added, removed or renamed in one of the walked directories, which always
  updates that directory's mtime (a new subdirectory updates its parent's). Editing an
  image in place changes neither the list nor the count, so it needs no new plan (the
  image's content is read by the jobs that use it).

Anything different, a different spec or ``keys:``, or a missing or unreadable manifest:
the input is read and the manifest written again. A stamp is trusted only when its newest
mtime is at least :data:`RACY_NS` older than the manifest itself (as git treats "racy"
index entries): a change made within the file system's timestamp granularity of the
planning would keep the old mtime, so such an input is read again at the next parse, which
rewrites the manifest; files and directories are stat'ed *before* they are read, so a change
during planning shows as a newer mtime.

Standard library only (imported by the Snakefile through :mod:`vqaflow.plan`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..columns import Columns
from .shards import count_file, shard_names
from .specs import input_files, input_kind, no_images_error, scan_directory

VERSION = 1
RACY_NS = 2_000_000_000  # 2 s: the coarsest common mtime granularity (FAT, some NFS servers)


@dataclass(frozen=True)
class InputPlan:
    """What planning needs of the input."""

    records: int
    shards: list[str]
    files: str | None  # a folder's image list (relative paths, JSON lines), else None
    from_manifest: bool  # the manifest's figures were reused (the input was not read)


def plan_input(spec: str | Path, keys: Columns, shard_size: int, manifest: str | Path) -> InputPlan:
    """The input's record count and shard names, from ``manifest`` when the input is
    unchanged since it was written, else from the input (and the manifest written)."""
    spec, manifest = str(spec), Path(manifest)
    identity = {"version": VERSION, "spec": spec, "kind": input_kind(spec), "keys": asdict(keys)}
    saved, written = _load(manifest)
    stamp = None if identity["kind"] == "directory" else _file_stamp(spec)
    if saved is not None and _unchanged(saved, identity, stamp, manifest, written):
        if saved["shard_size"] != shard_size:
            _write(manifest, json.dumps({**saved, "shard_size": shard_size}, separators=(",", ":")) + "\n")
        files = saved.get("files")
        return InputPlan(saved["records"], shard_names(saved["records"], shard_size),
                         str(manifest.with_name(files)) if files else None, True)
    entry = {**identity, "shard_size": shard_size}
    list_path = None
    if identity["kind"] == "directory":
        names, dirs = scan_directory(spec)
        if not names:
            raise no_images_error(spec)
        entry.update(records=len(names), dirs=dirs, files="files.jsonl")
        list_path = manifest.with_name(entry["files"])
        if not _write(list_path, "".join(json.dumps(name) + "\n" for name in names)):
            list_path = None  # the split job lists the folder itself
    else:
        entry.update(records=sum(count_file(Path(path), keys) for path, _, _ in stamp), stamp=stamp)
    if list_path is not None or identity["kind"] != "directory":
        _write(manifest, json.dumps(entry, separators=(",", ":")) + "\n")
    return InputPlan(entry["records"], shard_names(entry["records"], shard_size),
                     str(list_path) if list_path else None, False)


def read_file_list(path: str | Path) -> list[str]:
    """A folder input's image paths (relative to it) as the manifest lists them."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _file_stamp(spec: str) -> list[list]:
    """``[path, size, mtime_ns]`` of each file the spec names, in reading order."""
    stamp = []
    for path in input_files(spec):
        status = os.stat(path)
        stamp.append([str(path), status.st_size, status.st_mtime_ns])
    return stamp


def _unchanged(saved: dict, identity: dict, stamp: list | None, manifest: Path, written: int) -> bool:
    """Whether the manifest describes the input as it is now, and may be trusted."""
    if any(saved.get(key) != value for key, value in identity.items()):
        return False
    try:
        if stamp is not None:
            mtimes = [mtime for _, _, mtime in saved["stamp"]]
            same = saved["stamp"] == stamp
        else:
            root = identity["spec"]
            mtimes = [mtime for _, mtime in saved["dirs"]]
            same = os.path.exists(manifest.with_name(saved["files"])) and all(
                os.stat(os.path.join(root, rel) if rel else root).st_mtime_ns == mtime
                for rel, mtime in saved["dirs"])
        return same and isinstance(saved["records"], int) and max(mtimes, default=0) < written - RACY_NS
    except (OSError, KeyError, TypeError, ValueError):
        return False


def _load(manifest: Path) -> tuple[dict | None, int]:
    """The saved manifest (None when missing or unreadable) and its own mtime in ns."""
    try:
        written = os.stat(manifest).st_mtime_ns
        with manifest.open(encoding="utf-8") as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        return None, 0
    return (saved if isinstance(saved, dict) else None), written


def _write(path: Path, text: str) -> bool:
    """Write a file atomically (a temporary file renamed); False when it cannot be written:
    a results folder that cannot be written only costs a new count at the next parse."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False
    return True
