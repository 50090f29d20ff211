"""Input specs: what a spec names (a directory of images, a file or a glob), the format of
each file by its extension, and the files in reading order."""

from __future__ import annotations

import glob
import os
import re
import stat
import sys
from pathlib import Path

IMAGE_EXTENSIONS = frozenset((".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"))
_GLOB_MAGIC = re.compile(r"[*?[]")
_SKIPPED: set[str] = set()  # special files already warned about in this process


class InputError(ValueError):
    """The input file cannot be used; the message names the file and the place."""


def input_format(path: str | Path) -> str:
    """The format of an input file by its extension: json, jsonl or parquet."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(
        f"{path}: unsupported input format {suffix!r} (use .json, .jsonl or .parquet)"
    )


def input_kind(spec: str | Path) -> str:
    """What an input spec names: ``"directory"`` (of images), ``"file"`` or ``"glob"``.

    An existing path wins over glob characters in its name; a path that does not exist
    and has no glob characters is a ``"file"`` (reading it says it does not exist).
    """
    path = Path(spec)
    if path.is_dir():
        return "directory"
    if path.exists() or not _GLOB_MAGIC.search(str(spec)):
        return "file"
    return "glob"


def scan_directory(root: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """The image files under ``root`` (as :func:`image_files`: special files skipped with a
    warning) and every directory walked,
    as ``(relative POSIX path, mtime in ns)`` (``""`` is ``root``).

    Each directory is stat'ed before it is listed, so an entry added, removed or renamed
    during the walk leaves a directory whose mtime is newer than the one recorded.
    Unreadable directories are skipped, as :func:`os.walk` does.
    """
    files: list[str] = []
    dirs: list[tuple[str, int]] = []
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            mtime = os.stat(os.path.join(root, rel) if rel else root).st_mtime_ns
            with os.scandir(os.path.join(root, rel) if rel else root) as entries:
                listed = [(entry.name, _is_dir(entry), entry.is_symlink()) for entry in entries]
        except OSError:
            continue
        dirs.append((rel, mtime))
        for name, is_dir, is_link in listed:
            if name.startswith("."):
                continue
            child = f"{rel}/{name}" if rel else name
            if is_dir:  # a symlink to a directory is neither walked nor an image, as in os.walk
                if not is_link:
                    pending.append(child)
            elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                if not _special(os.path.join(root, child)):
                    files.append(child)
    files.sort()
    dirs.sort()
    return files, dirs


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a directory; False for what cannot be looked at (a symlink loop),
    which is kept as a file and fails as an image of its own record."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def image_files(root: Path) -> list[str]:
    """Relative POSIX paths of the image files under ``root``, sorted; hidden files and
    directories (name starting with ``.``) are skipped, directory symlinks not followed,
    special files (FIFOs, sockets, devices) skipped with a warning naming them. A file
    that cannot be looked at (a symlink loop, a dangling link) is kept: it fails as an
    image of its own record."""
    return scan_directory(root)[0]


def no_images_error(spec: str | Path) -> InputError:
    """The error for a directory without image files."""
    extensions = ", ".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))
    return InputError(f"{spec}: the directory holds no image files ({extensions})")


def _special(path: str) -> bool:
    """Whether ``path`` is a FIFO, socket or device (reading one may block forever)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if stat.S_ISREG(mode):
        return False
    if path not in _SKIPPED:
        _SKIPPED.add(path)
        print(f"warning: {path}: not a regular file (a FIFO, socket or device); skipped", file=sys.stderr)
    return True


def input_files(spec: str | Path) -> list[Path]:
    """The files an input spec consists of, in reading order.

    A file: itself (it must exist). A glob: the matching files, sorted (directories
    skipped; ``**`` recurses). A directory: its image files, recursively, sorted by
    their path relative to it. Raises :class:`InputError` when nothing is there.
    """
    kind = input_kind(spec)
    if kind == "directory":
        root = Path(spec)
        files = [root / rel for rel in image_files(root)]
        if not files:
            raise no_images_error(spec)
        return files
    if kind == "glob":
        files = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if os.path.isfile(p))
        if not files:
            raise InputError(f"{spec}: no file matches this pattern")
        for path in files:
            input_format(path)
        return files
    path = Path(spec)
    input_format(path)
    if not path.exists():
        raise InputError(f"{path}: input file does not exist")
    return [path]


