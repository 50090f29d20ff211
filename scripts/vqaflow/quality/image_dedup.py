"""Near-duplicate images, found before any request is sent.

Two modes:

``exact``
    Byte-identical images: the sha256 of the encoded bytes (of a local file or a base64
    data URL; an http(s) URL is not fetched, its text is hashed, so only the same URL
    matches). Distance is always 0.
``perceptual``
    The 64-bit DCT perceptual hash (``imagehash.phash``, after EXIF orientation and
    flattening transparency onto white) and the Hamming distance between hashes: two
    images are duplicates when the distance is at most ``max_distance`` (default 4 of 64
    bits). Re-encoded, resized, lightly recoloured copies of one picture land within a
    few bits; crops, rotations, mirror images and large overlays do not. http(s) URLs
    cannot be hashed without fetching and are reported as unreadable.

:func:`find_duplicates` goes over the whole input in input order and keeps the first
record of each group: a record is a duplicate when its images match a record that was
kept earlier (a duplicate is never the representative of later records, so
``duplicate_of`` always names a kept record). Among several kept matches it names the
nearest (ties: the earliest).

Multi-image records: a record is a duplicate of a kept record with the same number of
images when image *i* matches image *i* for every *i* (same order); the distance
reported is the largest of the per-image distances. A single-image record never
duplicates a multi-image record or the other way round. Records without images are never
duplicates. A record with an unreadable image is neither a duplicate nor kept as a
representative; its failures are reported separately (the ``unreadable`` list) and no
exception is raised for one bad image.

Scale: the search is multi-index hashing (Norouzi et al., 2012). The 64 bits are split
into ``m`` bands; by the pigeonhole principle two hashes within distance ``d`` agree to
within ``d // m`` bits on at least one band, so each band's table is probed with the
band value and its variants of up to ``d // m`` flipped bits, and only those candidates
are compared in full. With ``m = d + 1`` the probe is one exact lookup per band; for
large inputs fewer, wider bands with one flipped bit are cheaper (fewer candidates per
bucket); :func:`plan_bands` picks ``m`` from the expected input size. Either way a
lookup costs about a hundred dictionary probes, not a scan of all earlier images, so
10^6 images are searched in well under a minute (``bench/dedup.py``). Hashing the images
(decoding them) is what costs: use ``workers`` processes.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..digests import content_digest
from ..images import ImageError, is_data_url, is_url, read_bytes, resolve

MODES = ("exact", "perceptual")
HASH_BITS = 64
DRAFT_SIZE = 256  # JPEGs are decoded at a reduced scale of at least this size (much faster)


class DedupError(ValueError):
    """Bad arguments (not a bad image: those are reported, never raised)."""


def _open(ref: bytes | str, root: str | Path):
    from PIL import Image

    if isinstance(ref, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(ref)))
    if is_url(ref):
        raise ImageError(f"{ref}: http(s) images are not fetched for perceptual dedup")
    if is_data_url(ref):
        return Image.open(io.BytesIO(read_bytes(ref)))
    path = resolve(ref, root)
    if not Path(path).is_file():
        raise ImageError(f"{ref}: image file not found")
    return Image.open(path)


def perceptual_hash(image) -> int:
    """The 64-bit pHash of a Pillow image as an int (EXIF orientation applied,
    transparency flattened onto white)."""
    import imagehash
    from PIL import Image, ImageOps

    image.draft("RGB", (DRAFT_SIZE, DRAFT_SIZE))  # JPEG only; a no-op for other formats
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    bits = imagehash.phash(image).hash.flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def image_key(ref: bytes | str | os.PathLike, mode: str = "perceptual", root: str | Path = ".") -> int | str:
    """The dedup key of one image given as bytes, a path (relative to ``root``) or a data
    URL: its content digest, ``"sha256:<hex>"`` (``exact``) or the 64-bit pHash as an int
    (``perceptual``). Raises :class:`~vqaflow.images.ImageError` (or a Pillow error) when
    the image cannot be read."""
    if isinstance(ref, os.PathLike):
        ref = os.fspath(ref)
    if mode == "exact":
        if isinstance(ref, (bytes, bytearray, memoryview)):
            data = bytes(ref)
        elif is_url(ref):
            data = ref.encode()
        else:
            data = read_bytes(resolve(ref, root))
        return content_digest(data)
    if mode == "perceptual":
        with _open(ref, root) as image:
            return perceptual_hash(image)
    raise DedupError(f"dedup mode must be one of {', '.join(MODES)}, got {mode!r}")


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _safe_key(task: tuple[str, str, str]) -> tuple[int | str | None, str | None]:
    """(key, None) or (None, error message): never raises, for the process pool."""
    ref, mode, root = task
    try:
        return image_key(ref, mode, root), None
    except Exception as err:  # noqa: BLE001 - one bad image must not stop a run of 10^6
        return None, f"{type(err).__name__}: {err}"


def plan_bands(max_distance: int, expected: int, bits: int = HASH_BITS) -> int:
    """The number of bands for multi-index hashing that minimises the estimated cost of a
    lookup (probes times expected entries per probed bucket) for ``expected`` entries."""
    best, best_cost = 1, math.inf
    for bands in range(1, max_distance + 2):
        radius = max_distance // bands
        width = bits // bands  # the narrowest band
        probes = sum(math.comb(width, k) for k in range(radius + 1))
        cost = bands * probes * (1 + expected / 2 ** width)
        if cost < best_cost:
            best, best_cost = bands, cost
    return best


class HashIndex:
    """Multi-index hashing over 64-bit keys: :meth:`search` returns the entries within
    ``max_distance`` without comparing against every entry."""

    def __init__(self, max_distance: int, expected: int = 1_000_000, bits: int = HASH_BITS,
                 bands: int | None = None):
        if max_distance < 0 or max_distance >= bits:
            raise DedupError(f"max_distance must be between 0 and {bits - 1}, got {max_distance}")
        self.max_distance = max_distance
        self.bands = bands or plan_bands(max_distance, max(expected, 1), bits)
        self.radius = max_distance // self.bands
        widths = [bits // self.bands + (1 if i < bits % self.bands else 0) for i in range(self.bands)]
        self._slices = []  # (shift, mask, flips) per band
        shift = bits
        for width in widths:
            shift -= width
            flips = [0] + [sum(1 << bit for bit in combo)
                           for k in range(1, self.radius + 1)
                           for combo in itertools.combinations(range(width), k)]
            self._slices.append((shift, (1 << width) - 1, flips))
        self._tables: list[dict[int, int | list[int]]] = [{} for _ in widths]
        self.keys: list[int] = []

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: int) -> int:
        """Add a key; returns its entry number (0, 1, 2, ... in order of addition)."""
        entry = len(self.keys)
        self.keys.append(key)
        # A bucket is one int (entry + 1, so that it is never falsy; one object shared by the
        # band tables) until a second entry arrives, then a list: half the memory of lists.
        tag = entry + 1
        for table, (shift, mask, _) in zip(self._tables, self._slices):
            value = (key >> shift) & mask
            bucket = table.get(value)
            if bucket is None:
                table[value] = tag
            elif bucket.__class__ is int:
                table[value] = [bucket, tag]
            else:
                bucket.append(tag)
        return entry

    def search(self, key: int) -> list[tuple[int, int]]:
        """(entry, distance) of every entry within ``max_distance``, by entry number."""
        distances: dict[int, int] = {}
        keys = self.keys
        for table, (shift, mask, flips) in zip(self._tables, self._slices):
            for bucket in filter(None, map(table.get, map(((key >> shift) & mask).__xor__, flips))):
                for tag in ((bucket,) if bucket.__class__ is int else bucket):
                    if tag not in distances:
                        distances[tag] = (keys[tag - 1] ^ key).bit_count()
        limit = self.max_distance
        return sorted((tag - 1, distance) for tag, distance in distances.items() if distance <= limit)


def _batches(items: Iterable[tuple[str, list[str]]], size: int) -> Iterator[list[tuple[str, list[str]]]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _short(ref) -> str:
    if isinstance(ref, (bytes, bytearray, memoryview)):
        return f"<{len(ref)} bytes>"
    return ref if len(ref) <= 80 else ref[:60] + "..."


def hash_records(
    items: Iterable[tuple[str, list[str]]],
    mode: str,
    root: str | Path = ".",
    *,
    workers: int = 1,
    batch_size: int = 2048,
    timing: dict | None = None,
) -> Iterator[dict]:
    """The dedup keys of each record's images, in input order: one *hash line* per record,
    ``{"id", "keys": [key per image]}``, with ``"unreadable": [{"image", "error"}]`` (and
    ``None`` for those images' keys) when an image cannot be read. Keys are what :func:`image_key` returns (JSON
    values), so the lines of every shard can be written out and matched later by
    :class:`DuplicateMatcher`. ``workers`` > 1 hashes in a process pool; ``timing`` (when
    given) receives ``hashing_seconds``."""
    _check_arguments(mode, 0)
    root = str(root)
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    hashing = 0.0
    try:
        for batch in _batches(items, batch_size):
            batch = [(str(record_id), [refs] if isinstance(refs, (str, bytes)) else list(refs or ()))
                     for record_id, refs in batch]
            tick = time.perf_counter()
            results = _hash_all([(ref, mode, root) for _, refs in batch for ref in refs], pool, workers)
            hashing += time.perf_counter() - tick
            position = 0
            for record_id, refs in batch:
                keys = results[position:position + len(refs)]
                position += len(refs)
                bad = [{"image": _short(ref), "error": error} for ref, (_, error) in zip(refs, keys) if error is not None]
                line = {"id": record_id, "keys": [key for key, _ in keys]}
                yield {**line, "unreadable": bad} if bad else line
    finally:
        if pool is not None:
            pool.shutdown()
        if timing is not None:
            timing["hashing_seconds"] = round(timing.get("hashing_seconds", 0) + hashing, 3)


class DuplicateMatcher:
    """Finds duplicates among hash lines (:func:`hash_records`) added in input order: the
    first record of each group is kept, later ones matching a kept record are duplicates.
    ``unreadable`` (when given) collects ``{"id", "image", "error"}`` of unreadable images;
    ``expected`` sizes the perceptual index."""

    def __init__(self, mode: str, max_distance: int, expected: int = 1_000_000, unreadable: list | None = None):
        _check_arguments(mode, max_distance)
        self.mode, self.max_distance = mode, max_distance
        self.unreadable = unreadable
        self.exact: dict[tuple, str] = {}
        self.index = HashIndex(max_distance, expected) if mode == "perceptual" else None
        self.kept: list[tuple[str, tuple[int, ...]]] = []  # perceptual: (record id, hashes) per index entry
        self.duplicates: list[dict] = []
        self.counts = {"records": 0, "images": 0, "unreadable_images": 0, "duplicates": 0, "kept": 0}

    def add(self, line: dict) -> dict | None:
        """Match one record's hash line; its duplicate entry, or None when it is kept (or has
        no images, or an unreadable one)."""
        record_id, keys, bad = line["id"], line["keys"], line.get("unreadable") or ()
        counts = self.counts
        counts["records"] += 1
        counts["images"] += len(keys)
        if bad:
            counts["unreadable_images"] += len(bad)
            if self.unreadable is not None:
                self.unreadable.extend({"id": record_id, **entry} for entry in bad)
            return None
        if not keys:
            return None
        values = tuple(tuple(key) if isinstance(key, list) else key for key in keys)
        if self.index is None:
            match = _match_exact(self.exact, values)
        else:
            match = _match_perceptual(self.index, self.kept, values)
        if match is None:
            counts["kept"] += 1
            if self.index is None:
                self.exact[values] = record_id
            else:
                self.index.add(values[0])
                self.kept.append((record_id, values))
            return None
        counts["duplicates"] += 1
        duplicate = {"id": record_id, "duplicate_of": match[0], "distance": match[1]}
        self.duplicates.append(duplicate)
        return duplicate

    def stats(self) -> dict:
        return {**self.counts, "mode": self.mode, "max_distance": self.max_distance,
                "bands": self.index.bands if self.index is not None else None}


def find_duplicates(
    items: Iterable[tuple[str, list[str]]],
    mode: str,
    max_distance: int,
    root: str | Path = ".",
    *,
    workers: int = 1,
    unreadable: list | None = None,
    stats: dict | None = None,
    batch_size: int = 2048,
    expected: int | None = None,
) -> list[dict]:
    """Records whose images duplicate an earlier kept record's, in input order:
    :func:`hash_records` then :class:`DuplicateMatcher` in one process.

    ``items`` yields ``(record id, image refs)`` (paths relative to ``root``, data URLs
    or http(s) URLs; a single string is taken as one image). Returns
    ``[{"id", "duplicate_of", "distance"}]``. Images that cannot be read are appended
    to ``unreadable`` (when given) as ``{"id", "image", "error"}``; ``stats`` (when
    given) receives counts and timings. ``workers`` > 1 hashes in a process pool;
    ``expected`` (default: ``len(items)`` or 10^6) sizes the perceptual index.
    """
    if expected is None:
        expected = len(items) if hasattr(items, "__len__") else 1_000_000
    matcher = DuplicateMatcher(mode, max_distance, expected, unreadable)
    timing: dict = {}
    started = time.perf_counter()
    for line in hash_records(items, mode, root, workers=workers, batch_size=batch_size, timing=timing):
        matcher.add(line)
    if stats is not None:
        elapsed = time.perf_counter() - started
        stats.update(matcher.stats(), workers=workers, seconds=round(elapsed, 3), **timing,
                     images_per_second=round(matcher.counts["images"] / elapsed, 1) if elapsed else None)
    return matcher.duplicates


def _check_arguments(mode: str, max_distance: int) -> None:
    if mode not in MODES:
        raise DedupError(f"dedup mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(max_distance, int) or isinstance(max_distance, bool) or not 0 <= max_distance < HASH_BITS:
        raise DedupError(f"max_distance must be an integer from 0 to {HASH_BITS - 1}, got {max_distance!r}")


def _hash_all(tasks: list[tuple[str, str, str]], pool: ProcessPoolExecutor | None,
              workers: int) -> list[tuple[int | str | None, str | None]]:
    """:func:`_safe_key` of every task, in the pool when there is one and more than one task."""
    if pool is not None and len(tasks) > 1:
        chunk = max(1, len(tasks) // (workers * 8))
        return list(pool.map(_safe_key, tasks, chunksize=chunk))
    return [_safe_key(task) for task in tasks]


def _match_exact(exact: dict[tuple[str, ...], str], values: tuple[str, ...]) -> tuple[str, int] | None:
    first = exact.get(values)
    return None if first is None else (first, 0)


def _match_perceptual(index: HashIndex, kept: list[tuple[str, tuple[int, ...]]],
                      values: tuple[int, ...]) -> tuple[str, int] | None:
    best = None
    for entry, distance in index.search(values[0]):
        record_id, others = kept[entry]
        if len(others) != len(values):
            continue
        for mine, theirs in zip(values[1:], others[1:]):
            distance = max(distance, hamming(mine, theirs))
            if distance > index.max_distance:
                break
        else:
            if best is None or distance < best[1]:
                best = (record_id, distance)
    return best
