"""One input record checked as it is read: an object, its images in their shard form
(embedded bytes as data URLs), its conversation a list of turns, its id a string or a
number (a null id removed)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ..columns import Columns
from .image_refs import bytes_data_url
from .specs import InputError

_IMAGE_SHAPES = 'a path, a {"bytes", "path"} image or a list of them'


def _normalise_image(where: str, name: str, value: Any, in_list: bool) -> Any:
    """One image that is not a plain path, in its JSON-safe shard form: bytes become a
    data URL (in the ``bytes`` field of a ``{"bytes", "path"}`` image)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes_data_url(bytes(value))
    if not isinstance(value, dict) or not value.keys() <= {"bytes", "path"}:
        got = f"an object with keys {sorted(value)}" if isinstance(value, dict) else type(value).__name__
        raise InputError(f"{where}: {name!r} must be {_IMAGE_SHAPES}, got {got}")
    data, path = value.get("bytes"), value.get("path")
    if path is not None and not isinstance(path, str):
        raise InputError(f"{where}: {name!r}: an image's 'path' must be a string, got {type(path).__name__}")
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes_data_url(bytes(data)) if data else None
    elif isinstance(data, str):
        if data and not data.startswith("data:"):
            try:
                data = bytes_data_url(base64.b64decode(data, validate=True))
            except binascii.Error as err:
                raise InputError(f"{where}: {name!r}: an image's 'bytes' string is not base64: {err}") from None
        data = data or None
    elif data is not None:
        raise InputError(
            f"{where}: {name!r}: an image's 'bytes' must be bytes or a base64 string, got {type(data).__name__}"
        )
    if data is None and not path and in_list:
        raise InputError(f"{where}: {name!r}: an image in the list has neither bytes nor path")
    return value if data is value.get("bytes") else {**value, "bytes": data}


def check_record(where: str, record: Any, keys: Columns) -> None:
    """Validate one record in place: images in their shard form, a null id removed."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    image = record.get(keys.image)
    if image is not None and type(image) is not str:
        if isinstance(image, list):
            if not all(type(i) is str for i in image):
                record[keys.image] = [
                    i if type(i) is str else _normalise_image(where, keys.image, i, True) for i in image
                ]
        else:
            record[keys.image] = _normalise_image(where, keys.image, image, False)
    conversation = record.get(keys.conversation)
    if conversation is not None and (
        not isinstance(conversation, list) or not all(isinstance(turn, dict) for turn in conversation)
    ):
        raise InputError(f"{where}: {keys.conversation!r} must be a list of turns")
    if keys.id in record:
        raw_id = record[keys.id]
        if raw_id is None:
            del record[keys.id]
        elif isinstance(raw_id, (dict, list)):
            raise InputError(f"{where}: {keys.id!r} must be a string or a number, got {type(raw_id).__name__}")

