"""Near-duplicate images, found before any request is sent.

Two modes:

``exact``
    Byte-identical images: the sha256 of the encoded bytes (of a local file or a base64
    data URL; an http(s) URL is not fetched, its text is hashed, so only the same URL
    matches). Distance is always 0.
``perceptual``
    The key of :mod:`.image_keys`: a 64-bit pHash with a 4×4 colour thumbnail; two images
    are duplicates when their hashes are within ``max_distance`` bits (default 4 of 64) and
    their colours agree. Images with too little texture for a pHash (flat colours, smooth
    gradients, fine noise) are keyed by their bytes: only a byte copy matches them. http(s)
    URLs cannot be hashed without fetching and are reported as unreadable.

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

import itertools
import math
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .image_keys import (  # noqa: F401 - image_key, hamming, perceptual_hash: this module's API too
    MODES,
    DedupError,
    PerceptualKey,
    hamming,
    hash_bits,
    image_key,
    key_distance,
    perceptual_hash,
)

HASH_BITS = 64


def _safe_key(task: tuple[str, str, str]) -> tuple[PerceptualKey | None, str | None]:
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
    ``max_distance`` without comparing against every entry. Keys are pHashes (ints) or
    perceptual keys (:func:`image_key`): a pair is indexed by its pHash, a digest (an image
    too flat for a pHash) only finds itself."""

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
        self._digests: dict[str, list[int]] = {}  # digest keys: entries by digest
        self.keys: list = []
        self._hashes: list[int | None] = []  # the pHash of each entry (None for a digest)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: PerceptualKey) -> int:
        """Add a key; returns its entry number (0, 1, 2, ... in order of addition)."""
        entry = len(self.keys)
        self.keys.append(key)
        if isinstance(key, str):
            self._hashes.append(None)
            self._digests.setdefault(key, []).append(entry)
            return entry
        key = hash_bits(key)
        self._hashes.append(key)
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

    def search(self, key: PerceptualKey) -> list[tuple[int, int]]:
        """(entry, pHash distance) of every entry within ``max_distance``, by entry number
        (for a digest: the entries of the same digest, at distance 0)."""
        if isinstance(key, str):
            return [(entry, 0) for entry in self._digests.get(key, ())]
        key = hash_bits(key)
        distances: dict[int, int] = {}
        hashes = self._hashes
        for table, (shift, mask, flips) in zip(self._tables, self._slices):
            for bucket in filter(None, map(table.get, map(((key >> shift) & mask).__xor__, flips))):
                for tag in ((bucket,) if bucket.__class__ is int else bucket):
                    if tag not in distances:
                        distances[tag] = (hashes[tag - 1] ^ key).bit_count()
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


def _match_perceptual(index: HashIndex, kept: list[tuple[str, tuple]],
                      values: tuple) -> tuple[str, int] | None:
    """The kept record nearest to a record's image keys ``values`` (record id, distance),
    or None: a kept record with as many images, every image within the distance and of
    agreeing colours (:func:`key_distance`); the distance is the largest of them."""
    best = None
    for entry, _ in index.search(values[0]):
        record_id, others = kept[entry]
        distance = record_distance(values, others, index.max_distance)
        if distance is not None and (best is None or distance < best[1]):
            best = (record_id, distance)
    return best


def record_distance(mine: tuple, theirs: tuple, max_distance: int) -> int | None:
    """The largest :func:`key_distance` between two records' images, image *i* against
    image *i*; None unless they have as many images and every one is within ``max_distance``."""
    if len(mine) != len(theirs):
        return None
    worst = 0
    for a, b in zip(mine, theirs):
        distance = key_distance(a, b)
        if distance is None or distance > max_distance:
            return None
        worst = max(worst, distance)
    return worst
