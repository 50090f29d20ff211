"""Image preparation: resolve, decode, orient, convert, downscale and encode.

Local files and data URLs are decoded with Pillow and prepared; http(s) URLs pass
through unchanged for the API backend to fetch.

Memory stays bounded whatever the images: an image whose header declares more than
:data:`MAX_IMAGE_PIXELS` pixels is refused before anything is decoded (a decompression
bomb, or a scan no model needs at full size); a JPEG larger than ``max_pixels`` is
decoded at 1/2, 1/4 or 1/8 of its size by the JPEG decoder itself (``Image.draft``),
so a 100-megapixel photo costs a few megabytes; other formats are decoded at full size,
at most :data:`DECODE_BUDGET_BYTES` of them at once across the process's threads.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .digests import content_digest

JPEG_QUALITY = 90
MAX_AS_IS_BYTES = 1_500_000
SENDABLE_MODES = {"JPEG": {"RGB", "L"}, "PNG": {"RGB", "RGBA", "L"}}
# The largest image (width x height, from its header) that is decoded at all: 150 MP
# lets through every camera photo (100-MP medium format, stitched panoramas) and keeps
# a full decode of any other format under 1.2 GB.
MAX_IMAGE_PIXELS = 150_000_000
# Bytes of decoded images (and their conversion copies) held at once by all threads of
# the process; an image needing more waits until it can run alone.
DECODE_BUDGET_BYTES = 1_000_000_000

# Pillow warns from 89 MP and refuses from 179 MP; this module applies its own limit.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An image could not be used; the message names the image and the reason."""


class _Budget:
    """A process-wide byte budget for decoded images, shared by all threads."""

    def __init__(self, total: int):
        self.total, self.used = total, 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(amount, self.total)  # an image larger than the budget runs alone
        with self._changed:
            self._changed.wait_for(lambda: self.used + amount <= self.total)
            self.used += amount
        try:
            yield
        finally:
            with self._changed:
                self.used -= amount
                self._changed.notify_all()


_BUDGET = _Budget(DECODE_BUDGET_BYTES)
# Pillow allocates image memory in blocks of 16 MB by default, which the C allocator keeps
# in per-thread arenas after use: four threads each decoding a 100-MP image once kept
# 2 GB. Blocks above the allocator's 32 MB mmap threshold go back to the system when freed
# (an image smaller than a block takes only what it needs).
Image.core.set_block_size(64 * 1024 * 1024)


def is_url(ref: str) -> bool:
    """True for http(s) URLs, which are passed through unchanged."""
    return ref.startswith(("http://", "https://"))


def is_data_url(ref: str) -> bool:
    return ref.startswith("data:")


def is_digest(ref: str) -> bool:
    """True for ``sha256:<hex>``: an embedded image the dataset names by its digest."""
    return ref.startswith("sha256:")


def resolve(ref: str, root: str | Path) -> str:
    """Absolute path of a local image (relative to ``root``); URLs and digests unchanged."""
    if is_url(ref) or is_data_url(ref) or is_digest(ref):
        return ref
    try:
        return str((Path(root) / Path(ref).expanduser()).resolve())
    except (RuntimeError, OSError) as err:  # a symlink loop (RuntimeError before Python 3.13)
        raise ImageError(f"{ref}: cannot resolve the path: {err}") from None


def read_bytes(ref: str) -> bytes:
    """The encoded bytes of a local file or a data URL."""
    if is_data_url(ref):
        header, _, payload = ref.partition(",")
        if ";base64" not in header:
            raise ImageError(f"{ref[:40]}...: only base64 data URLs are supported")
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error as err:
            raise ImageError(f"{ref[:40]}...: invalid base64 data URL: {err}") from None
    try:
        if not stat.S_ISREG(Path(ref).stat().st_mode):  # reading a FIFO would wait forever
            raise ImageError(f"{ref}: not a regular file (a FIFO, socket, device or directory)")
        data = Path(ref).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{ref}: image file not found") from None
    except OSError as err:
        raise ImageError(f"{ref}: cannot read image: {err.strerror or err}") from None
    except ImageError:
        raise
    except ValueError as err:  # a path with a NUL byte
        raise ImageError(f"{ref!r}: not a usable path: {err}") from None
    if not data:
        raise ImageError(f"{ref}: empty image file (0 bytes)")
    return data


def digest(ref: str) -> str:
    """A content fingerprint: :func:`~vqaflow.digests.content_digest` of the file's bytes,
    or of the URL itself."""
    return content_digest(ref.encode() if is_url(ref) else read_bytes(ref))


def _normalise_mode(image: Image.Image) -> Image.Image:
    """Convert to RGB, or RGBA where the image carries transparency."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        alpha = image.getchannel("A")
        if alpha.getextrema()[0] == 255:
            return image.convert("RGB")
        return image
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def _too_large(ref: str, pixels: int, size: str = "") -> ImageError:
    return ImageError(
        f"{_name(ref)}: {pixels:,} pixels{size} exceeds the limit of {MAX_IMAGE_PIXELS:,} "
        "pixels for an image (refused before decoding)"
    )


def _decoded_bytes(image: Image.Image, header_pixels: int) -> int:
    """A generous estimate of the memory a decode and its conversions take."""
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    cost = 2 * per_pixel * image.width * image.height
    if image.format == "JPEG" and image.info.get("progressive"):
        cost += 4 * header_pixels  # the decoder buffers every coefficient of the full image
    return cost


@contextmanager
def _opened(ref: str, max_pixels: int | None) -> Iterator[tuple[bytes, Image.Image, int]]:
    """The file's bytes, the decoded image and its pixel count as the header declares it.

    Refuses an image above :data:`MAX_IMAGE_PIXELS` before decoding; decodes a JPEG
    larger than ``max_pixels`` at a reduced size; decodes fully otherwise (which finds
    corrupt files). The memory is accounted in the decode budget while the caller
    holds the image.
    """
    data = read_bytes(ref)
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        declared = re.search(r"\((\d+) pixels\)", str(err))
        raise _too_large(ref, int(declared.group(1))) if declared else ImageError(f"{_name(ref)}: {err}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{_name(ref)}: not an image format Pillow can decode") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{_name(ref)}: corrupt image: {err}") from None
    width, height = image.size
    pixels = width * height
    if pixels > MAX_IMAGE_PIXELS:
        raise _too_large(ref, pixels, f" ({width}x{height})")
    if max_pixels and image.format == "JPEG" and pixels > max_pixels:
        scale = (max_pixels / pixels) ** 0.5  # the decoder picks a size at least this large
        image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    with _BUDGET.hold(_decoded_bytes(image, pixels)):
        try:
            image.load()
        except Image.DecompressionBombError as err:
            raise ImageError(f"{_name(ref)}: {err}") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"{_name(ref)}: corrupt image: {err}") from None
        yield data, image, pixels


def _name(ref: str) -> str:
    return "data URL" if is_data_url(ref) else ref


def _prepare(ref: str, image: Image.Image, max_pixels: int) -> Image.Image:
    try:
        ImageOps.exif_transpose(image, in_place=True)  # no full-size copy when upright
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{_name(ref)}: corrupt EXIF data: {err}") from None
    image = _normalise_mode(image)
    width, height = image.size
    if width * height > max_pixels:
        scale = (max_pixels / (width * height)) ** 0.5
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def load(ref: str, max_pixels: int) -> Image.Image:
    """Decode and prepare a local image or data URL.

    Applies EXIF orientation, converts palette, CMYK, 16-bit and alpha modes to RGB
    (RGBA only where transparency is real), and downscales to at most ``max_pixels``
    keeping the aspect ratio (never upscales).
    """
    with _opened(ref, max_pixels) as (_, image, _):
        return _prepare(ref, image, max_pixels)


def _sendable_mime(data: bytes, image: Image.Image, pixels: int, max_pixels: int) -> str | None:
    """The MIME type when the file can go out unchanged: a JPEG or PNG already in a
    plain mode, upright, within ``max_pixels`` (``pixels`` as the file declares them)
    and :data:`MAX_AS_IS_BYTES`."""
    modes = SENDABLE_MODES.get(image.format)
    if modes is None or image.mode not in modes or len(data) > MAX_AS_IS_BYTES:
        return None
    if pixels > max_pixels:  # (a JPEG that large was decoded at a reduced size)
        return None
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        return None
    return Image.MIME[image.format]


def _is_line_art(image: Image.Image) -> bool:
    """Few distinct colours: diagrams, charts and text compress better as PNG."""
    sample = image if image.width * image.height <= 65536 else image.resize((256, 256))
    return sample.getcolors(maxcolors=256) is not None


def encode_image(image: Image.Image) -> tuple[bytes, str]:
    """Encode as PNG (transparency, line art) or JPEG (photos); returns (bytes, mime)."""
    buffer = io.BytesIO()
    if image.mode == "RGBA" or _is_line_art(image):
        image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue(), "image/png"
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), "image/jpeg"


def data_url(ref: str, max_pixels: int) -> str:
    """What the API receives for an image: the http(s) URL; the file's own bytes when
    they can go out unchanged (no re-encoding loss, no encoding time); else the
    prepared image."""
    if is_url(ref):
        return ref
    with _opened(ref, max_pixels) as (data, image, pixels):
        mime = _sendable_mime(data, image, pixels, max_pixels)
        if mime is None:
            data, mime = encode_image(_prepare(ref, image, max_pixels))
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
