"""A record's image field as the rest of the code sees it: the references sent to a model
(paths, URLs, embedded bytes as data URLs) and the value the dataset stores (never the
bytes: an embedded image is named by :func:`~vqaflow.digests.content_digest`)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ..digests import content_digest

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
)


def sniff_mime(data: bytes) -> str:
    """The MIME type of encoded image bytes by their magic number
    (``application/octet-stream`` when unknown)."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "image/heic"
    return "application/octet-stream"


def bytes_data_url(data: bytes) -> str:
    """A base64 data URL for encoded image bytes, the MIME type sniffed from them."""
    return f"data:{sniff_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def _data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    if ";base64" in header:
        return base64.b64decode(payload)
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(payload)


def _struct_ref(value: dict) -> str | None:
    """The reference of a ``{"bytes", "path"}`` image: its bytes as a data URL when
    embedded, else its path; None when it has neither."""
    data = value.get("bytes")
    if data:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return bytes_data_url(bytes(data))
        if data.startswith("data:"):
            return data
        return bytes_data_url(base64.b64decode(data))
    return value.get("path") or None


def image_refs(value: Any) -> tuple[str, ...]:
    """The image references of a record's image field, as the rest of the code sends them.

    Paths and URLs unchanged; embedded bytes (raw, or a ``{"bytes", "path"}`` image as
    ``datasets`` writes it) as ``data:<mime>;base64,...``; ``None``/``""`` gives ``()``.
    """
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (bytes_data_url(bytes(value)),)
    if isinstance(value, dict):
        ref = _struct_ref(value)
        return () if ref is None else (ref,)
    refs = []
    for item in value:
        if isinstance(item, str):
            refs.append(item)
        elif isinstance(item, dict):
            ref = _struct_ref(item)
            if ref is None:
                raise ValueError(f"an image in {value!r} has neither bytes nor path")
            refs.append(ref)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            refs.append(bytes_data_url(bytes(item)))
        else:
            raise ValueError(f"not an image reference: {item!r}")
    return tuple(refs)


def output_image_value(value: Any) -> Any:
    """What the dataset stores for an image field: never the bytes.

    A path (or URL) as it is; an image with a path: the path; embedded bytes without
    a path (and data URLs): ``"sha256:<hex digest of the bytes>"``. A list stays a list.
    """
    if value is None:
        return None
    if isinstance(value, list):
        return [output_image_value(item) for item in value]
    if isinstance(value, str):
        return _digest_text(value) if value.startswith("data:") else value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return content_digest(bytes(value))
    if isinstance(value, dict):
        if value.get("path"):
            return value["path"]
        data = value.get("bytes")
        if not data:
            return None
        return _digest_text(data) if isinstance(data, str) else content_digest(bytes(data))
    raise ValueError(f"not an image value: {value!r}")


def _digest_text(data: str) -> str:
    """The digest of the bytes in a data URL or base64 string (the same as
    ``images.digest`` gives); of the text itself if it does not decode."""
    try:
        return content_digest(_data_url_bytes(data) if data.startswith("data:") else base64.b64decode(data))
    except (binascii.Error, ValueError):
        return content_digest(data.encode("utf-8", "surrogatepass"))

