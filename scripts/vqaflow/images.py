"""Image preparation: resolve, decode, orient, convert, downscale and encode.

Local files and data URLs are decoded with Pillow and prepared; http(s) URLs pass
through unchanged for the API backend to fetch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 1024 * 1024
JPEG_QUALITY = 90
MAX_AS_IS_BYTES = 1_500_000
SENDABLE_MODES = {"JPEG": {"RGB", "L"}, "PNG": {"RGB", "RGBA", "L"}}


class ImageError(ValueError):
    """An image could not be used; the message names the image and the reason."""


def is_url(ref: str) -> bool:
    """True for http(s) URLs, which are passed through unchanged."""
    return ref.startswith(("http://", "https://"))


def is_data_url(ref: str) -> bool:
    return ref.startswith("data:")


def resolve(ref: str, root: str | Path) -> str:
    """Absolute path of a local image (relative to ``root``); URLs unchanged."""
    if is_url(ref) or is_data_url(ref):
        return ref
    return str((Path(root) / Path(ref).expanduser()).resolve())


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
        return Path(ref).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{ref}: image file not found") from None
    except OSError as err:
        raise ImageError(f"{ref}: cannot read image: {err.strerror or err}") from None


def digest(ref: str) -> str:
    """A content fingerprint: sha256 of the file's bytes, or of the URL itself."""
    data = ref.encode() if is_url(ref) else read_bytes(ref)
    return hashlib.sha256(data).hexdigest()


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


def _decode(ref: str) -> tuple[bytes, Image.Image]:
    """The file's bytes and the decoded image (decoding fully finds corrupt files)."""
    data = read_bytes(ref)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        raise ImageError(f"{_name(ref)}: not an image format Pillow can decode") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{_name(ref)}: corrupt image: {err}") from None
    return data, image


def _name(ref: str) -> str:
    return "data URL" if is_data_url(ref) else ref


def _prepare(ref: str, image: Image.Image, max_pixels: int) -> Image.Image:
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{_name(ref)}: corrupt EXIF data: {err}") from None
    image = _normalise_mode(image)
    width, height = image.size
    if width * height > max_pixels:
        scale = (max_pixels / (width * height)) ** 0.5
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def load(ref: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode and prepare a local image or data URL.

    Applies EXIF orientation, converts palette, CMYK, 16-bit and alpha modes to RGB
    (RGBA only where transparency is real), and downscales to at most ``max_pixels``
    keeping the aspect ratio (never upscales).
    """
    return _prepare(ref, _decode(ref)[1], max_pixels)


def _sendable_mime(data: bytes, image: Image.Image, max_pixels: int) -> str | None:
    """The MIME type when the file can go out unchanged: a JPEG or PNG already in a
    plain mode, upright, within ``max_pixels`` and :data:`MAX_AS_IS_BYTES`."""
    modes = SENDABLE_MODES.get(image.format)
    if modes is None or image.mode not in modes or len(data) > MAX_AS_IS_BYTES:
        return None
    if image.width * image.height > max_pixels:
        return None
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        return None
    return Image.MIME[image.format]


def _is_line_art(image: Image.Image) -> bool:
    """Few distinct colours: diagrams, charts and text compress better as PNG."""
    sample = image if image.width * image.height <= 65536 else image.resize((256, 256))
    return sample.getcolors(maxcolors=256) is not None


def encode(image: Image.Image) -> tuple[bytes, str]:
    """Encode as PNG (transparency, line art) or JPEG (photos); returns (bytes, mime)."""
    buffer = io.BytesIO()
    if image.mode == "RGBA" or _is_line_art(image):
        image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue(), "image/png"
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), "image/jpeg"


def data_url(ref: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """What the API receives for an image: the http(s) URL; the file's own bytes when
    they can go out unchanged (no re-encoding loss, no encoding time); else the
    prepared image."""
    if is_url(ref):
        return ref
    data, image = _decode(ref)
    mime = _sendable_mime(data, image, max_pixels)
    if mime is None:
        data, mime = encode(_prepare(ref, image, max_pixels))
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
