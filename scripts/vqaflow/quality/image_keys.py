"""The key of an image for dedup, and when two keys are the same image.

``exact``
    ``"sha256:<hex>"`` of the encoded bytes (of a local file or a base64 data URL; an
    http(s) URL is not fetched, its text is hashed, so only the same URL matches).
``perceptual``
    Three things about each image, after EXIF orientation and flattening transparency onto
    white, all from one 32×32 RGB reduction: the 64-bit DCT perceptual hash (pHash, as
    ``imagehash.phash`` computes it: the signs of the 8×8 lowest DCT coefficients of the grey
    image about their median), its *texture* (how many of those 64 coefficients lie at least
    :data:`TEXTURE_LEVEL` grey level of amplitude from the median, i.e. how many hash bits
    the picture decides rather than noise), and a 4×4 colour thumbnail (the mean RGB of each
    cell). Two images are duplicates when their hashes are within ``max_distance`` bits
    (default 4 of 64) **and** no channel of any thumbnail cell differs by more than
    :data:`COLOUR_TOLERANCE` levels. An image with less texture than :data:`MIN_TEXTURE`
    (flat colours, smooth gradients, fine noise, a page of small print: all look flat at
    32×32, so their hashes collide whatever they show) has no perceptual key: its key is its
    byte digest, as in ``exact`` mode, so it matches only a byte copy. Re-encoded and resized
    copies of a picture land within a few bits and a few levels; crops, rotations, mirror
    images, large overlays and recoloured copies (brighter, other colours) do not. http(s)
    URLs cannot be hashed without fetching and are reported as unreadable.

Measured on the demo images and synthetic ones (``tests/test_dedup.py``): a 50 % resize
re-encoded as JPEG q60 (or q30 at 25 %, WebP q50) stays within 4 levels of colour (9 at
worst) and keeps the texture count within one; flat colours and random noise count 1,
linear gradients 3-5, a diagonal or radial gradient or a page of small print 9-10, the demo
pictures 14-47. See ``docs/quality.md``.
"""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path
from typing import Union

from ..digests import content_digest
from ..images import ImageError, is_data_url, is_url, read_bytes, resolve

MODES = ("exact", "perceptual")
HASH_SIDE = 8  # the pHash is the 8×8 lowest DCT coefficients' signs
REDUCED_SIDE = 32  # of the image reduced to 32×32
DRAFT_SIZE = 256  # JPEGs are decoded at a reduced scale of at least this size (much faster)
REDUCING_GAP = 8.0  # a box reduction to ≥ 256 px, then Lanczos to 32 px (as fast as pure Lanczos is slow)
TEXTURE_LEVEL = 1.0  # grey levels of amplitude a coefficient must lie from the median to count
MIN_TEXTURE = 12  # coefficients (of 64) that must: below, the image is matched by its bytes only
COLOUR_GRID = 4  # the colour thumbnail is 4×4 cells
COLOUR_TOLERANCE = 24  # levels (of 255) a thumbnail channel may differ between duplicates
_AMPLITUDE = 2 * REDUCED_SIDE * REDUCED_SIDE  # a coefficient per grey level of a cosine's amplitude

# a perceptual key: (pHash, colours), or a content digest for an image with too little texture
PerceptualKey = Union[int, str, tuple, list]


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


def _flattened(image):
    """The image as RGB: JPEGs decoded at reduced scale, EXIF orientation applied,
    transparency flattened onto white."""
    from PIL import Image, ImageOps

    image.draft("RGB", (DRAFT_SIZE, DRAFT_SIZE))  # JPEG only; a no-op for other formats
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


@functools.cache
def _dct_rows():
    """The first 8 rows of the unnormalised 32-point DCT-II (scipy's, as imagehash uses it)."""
    import numpy as np

    k = np.arange(HASH_SIDE)[:, None]
    n = np.arange(REDUCED_SIDE)[None, :]
    return 2 * np.cos(np.pi * k * (2 * n + 1) / (2 * REDUCED_SIDE))


def perceptual_features(image) -> tuple[int, int, str]:
    """``(pHash, texture, colours)`` of a Pillow image: the 64-bit pHash as an int, how many
    of its 64 DCT coefficients lie at least :data:`TEXTURE_LEVEL` grey level from their
    median, and the 4×4 colour thumbnail as hex (48 bytes: RGB per cell, row by row)."""
    import numpy as np
    from PIL import Image

    small = _flattened(image).resize((REDUCED_SIDE, REDUCED_SIDE), Image.LANCZOS, reducing_gap=REDUCING_GAP)
    grey = np.asarray(small.convert("L"), dtype=np.float64)
    rows = _dct_rows()
    coefficients = rows @ grey @ rows.T
    median = np.median(coefficients)
    value = 0
    for bit in (coefficients > median).flatten():
        value = (value << 1) | int(bit)
    texture = int((np.abs(coefficients - median) >= TEXTURE_LEVEL * _AMPLITUDE).sum())
    colours = small.resize((COLOUR_GRID, COLOUR_GRID), Image.BOX).tobytes().hex()
    return value, texture, colours


def perceptual_hash(image) -> int:
    """The 64-bit pHash of a Pillow image as an int (EXIF orientation applied,
    transparency flattened onto white)."""
    return perceptual_features(image)[0]


def image_key(ref: bytes | str | os.PathLike, mode: str = "perceptual", root: str | Path = ".") -> PerceptualKey:
    """The dedup key of one image given as bytes, a path (relative to ``root``) or a data
    URL: its content digest, ``"sha256:<hex>"`` (``exact``), or (``perceptual``) the pair
    ``(pHash as an int, colour thumbnail as hex)`` — or the content digest when the image
    has too little texture for its pHash to mean anything (:data:`MIN_TEXTURE`). Keys are
    JSON values (a pair is written as a list). Raises :class:`~vqaflow.images.ImageError`
    (or a Pillow error) when the image cannot be read."""
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
            value, texture, colours = perceptual_features(image)
        if texture < MIN_TEXTURE:
            return image_key(ref, "exact", root)
        return value, colours
    raise DedupError(f"dedup mode must be one of {', '.join(MODES)}, got {mode!r}")


def key_distance(a: PerceptualKey, b: PerceptualKey) -> int | None:
    """How far apart two image keys are: the Hamming distance of their pHashes when their
    colours agree (every thumbnail channel within :data:`COLOUR_TOLERANCE`), 0 for equal
    digests; None when they can never be duplicates (different digests, a digest against a
    perceptual key, colours apart). Keys may be lists (read back from JSON); bare ints are
    compared as pHashes."""
    if isinstance(a, str) or isinstance(b, str):
        return 0 if a == b else None
    if isinstance(a, int) or isinstance(b, int):
        return hamming(a, b) if isinstance(a, int) and isinstance(b, int) else None
    if not colours_close(a[1], b[1]):
        return None
    return hamming(a[0], b[0])


def colours_close(a: str, b: str, tolerance: int | None = None) -> bool:
    """Whether two colour thumbnails (hex) agree: no channel of any cell further apart than
    ``tolerance`` (default :data:`COLOUR_TOLERANCE`) levels."""
    limit = COLOUR_TOLERANCE if tolerance is None else tolerance
    return len(a) == len(b) and all(abs(x - y) <= limit for x, y in zip(bytes.fromhex(a), bytes.fromhex(b)))


def hash_bits(key: PerceptualKey) -> int:
    """The pHash of a perceptual key (a bare int, or the first of a pair)."""
    return key if isinstance(key, int) else key[0]


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
