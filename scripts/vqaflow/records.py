"""Reading, validating and sharding input records.

An input *spec* is a file (``.json`` array, ``.jsonl``/``.ndjson``, ``.parquet``/``.pq``),
a glob of such files (read in sorted order as one input) or a directory of images (each
image becomes a record). Records are read with the standard ``json`` module (never
pandas), so every value keeps its type: ``"007"`` stays the string ``"007"``. Every
problem is reported with the file and the line (JSONL) or position (JSON array,
Parquet) it comes from.

Only the standard library is imported here: the Snakefile imports this module to plan
shards. Polars is imported lazily, to read Parquet rows; counting them reads the footer.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import glob
import hashlib
import json
import math
import os
import re
import struct
import sys
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from .columns import Columns
from .jsonl import encode

IMAGE_EXTENSIONS = frozenset((".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"))
_GLOB_MAGIC = re.compile(r"[*?[]")


class InputError(ValueError):
    """The input file cannot be used; the message names the file and the place."""


# --------------------------------------------------------------------------- input specs


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


def _image_files(root: Path) -> list[str]:
    """Relative POSIX paths of the image files under ``root``, sorted; hidden files and
    directories (name starting with ``.``) are skipped, directory symlinks not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = PurePath(os.path.relpath(dirpath, root))
        for name in filenames:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            found.append((rel / name).as_posix())
    found.sort()
    return found


def input_files(spec: str | Path) -> list[Path]:
    """The files an input spec consists of, in reading order.

    A file: itself (it must exist). A glob: the matching files, sorted (directories
    skipped; ``**`` recurses). A directory: its image files, recursively, sorted by
    their path relative to it. Raises :class:`InputError` when nothing is there.
    """
    kind = input_kind(spec)
    if kind == "directory":
        root = Path(spec)
        files = [root / rel for rel in _image_files(root)]
        if not files:
            extensions = ", ".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))
            raise InputError(f"{spec}: the directory holds no image files ({extensions})")
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


# --------------------------------------------------------------------------- images


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


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


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
        return _digest(bytes(value))
    if isinstance(value, dict):
        if value.get("path"):
            return value["path"]
        data = value.get("bytes")
        if not data:
            return None
        return _digest_text(data) if isinstance(data, str) else _digest(bytes(data))
    raise ValueError(f"not an image value: {value!r}")


def _digest_text(data: str) -> str:
    """The digest of the bytes in a data URL or base64 string (the same as
    ``images.digest`` gives); of the text itself if it does not decode."""
    try:
        return _digest(_data_url_bytes(data) if data.startswith("data:") else base64.b64decode(data))
    except (binascii.Error, ValueError):
        return _digest(data.encode("utf-8", "surrogatepass"))


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


def _check_record(where: str, record: Any, keys: Columns) -> None:
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


# --------------------------------------------------------------------------- readers


class _NonFinite:
    """Counts NaN/Infinity in one file and warns once, naming the first place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.first: str | None = None

    def note(self, where: str, n: int = 1) -> None:
        if self.first is None:
            self.first = where
        self.count += n

    def warn(self) -> None:
        if self.count:
            print(
                f"warning: {self.path}: {self.count} NaN/Infinity value(s) written as null "
                f"(first at {self.first})",
                file=sys.stderr,
            )


_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _surrogate_error(where: str) -> InputError:
    return InputError(
        f"{where}: a string holds a lone surrogate escape (such as \\ud800), which is not "
        "text; fix or drop it"
    )


def _iter_jsonl(path: Path, keys: Columns) -> Iterator[tuple[str, Any]]:
    nonfinite = _NonFinite(path)
    where = ""

    def constant(name: str) -> None:
        nonfinite.note(where)

    decode = json.JSONDecoder(parse_constant=constant).decode
    hint = _SURROGATE_HINT.search
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[3:]
            where = f"{path}:{lineno}"
            try:
                record = decode(raw.decode("utf-8"))
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: invalid JSON: {err}") from None
            except UnicodeDecodeError as err:
                raise InputError(f"{where}: not UTF-8 text: {err}") from None
            if hint(raw) and _has_lone_surrogate(record):
                raise _surrogate_error(where)
            yield where, record
    nonfinite.warn()


_NON_FINITE = object()


def _replace_non_finite(value: Any) -> tuple[Any, int]:
    """The value with the NaN marker replaced by None, and how many were replaced."""
    if value is _NON_FINITE:
        return None, 1
    if isinstance(value, float) and not math.isfinite(value):
        return None, 1
    if isinstance(value, dict):
        total = 0
        for key, item in value.items():
            new, n = _replace_non_finite(item)
            if n:
                value[key] = new
                total += n
        return value, total
    if isinstance(value, list):
        total = 0
        for index, item in enumerate(value):
            new, n = _replace_non_finite(item)
            if n:
                value[index] = new
                total += n
        return value, total
    return value, 0


def _records_of(path: Path, data: Any, keys: Columns, notice: bool) -> list:
    """The records of a parsed JSON file: the array, or the one list of objects inside a
    wrapping object (``{"data": [...]}``)."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    names = ", ".join(repr(k) for k in list(data)[:20]) + (", ..." if len(data) > 20 else "")
    lists = [
        key for key, value in data.items()
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value)
    ]
    if keys.image in data or keys.conversation in data:
        raise InputError(
            f"{path}: expected a JSON array of records, got a single object with keys {names}; "
            "wrap it in [ ] if it is one record"
        )
    if len(lists) != 1:
        holding = f"several lists of objects ({', '.join(map(repr, lists))})" if lists else "no list of objects"
        raise InputError(
            f"{path}: expected a JSON array of records, got an object with keys {names} "
            f"holding {holding}"
        )
    records = data[lists[0]]
    if notice:
        print(
            f"note: {path}: a JSON object, not an array; reading the {len(records)} records "
            f"under its key {lists[0]!r}",
            file=sys.stderr,
        )
    return records


def _load_json(path: Path, raw: bytes, parse_constant=None) -> Any:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text: {err}") from None
    try:
        return json.JSONDecoder(parse_constant=parse_constant).decode(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: invalid JSON: {err}") from None


def _iter_json_array(path: Path, keys: Columns) -> Iterator[tuple[str, Any]]:
    nonfinite = _NonFinite(path)
    found = 0

    def constant(name: str) -> object:
        nonlocal found
        found += 1
        return _NON_FINITE

    raw = path.read_bytes()
    data = _load_json(path, raw, constant)
    records = _records_of(path, data, keys, notice=True)
    lone = _SURROGATE_HINT.search(raw) is not None
    del raw, data
    for position, item in enumerate(records):
        where = f"{path}: record {position}"
        if found:
            item, n = _replace_non_finite(item)
            if n:
                nonfinite.note(where, n)
        if lone and _has_lone_surrogate(item):
            raise _surrogate_error(where)
        yield where, item
    nonfinite.warn()


PARQUET_BATCH = 10_000  # rows read at a time from a Parquet input


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes_data_url(bytes(value))
    return str(value)  # dates, times, decimals


def _iter_parquet(path: Path, keys: Columns) -> Iterator[tuple[str, Any]]:
    import polars as pl

    try:
        scan = pl.scan_parquet(path)
        rows = scan.select(pl.len()).collect().item()
    except Exception as err:  # polars raises several kinds for a bad file
        raise InputError(f"{path}: cannot read Parquet: {err}") from None
    nonfinite = _NonFinite(path)
    dumps, loads = json.dumps, json.loads
    for offset in range(0, rows, PARQUET_BATCH):
        batch = scan.slice(offset, PARQUET_BATCH).collect()
        for position, row in enumerate(batch.iter_rows(named=True), offset):
            try:
                record = loads(dumps(row, default=_json_default, allow_nan=False))
            except ValueError:  # NaN or infinite floats
                row, n = _replace_non_finite(row)
                nonfinite.note(f"{path}: row {position}", n)
                record = loads(dumps(row, default=_json_default, allow_nan=False))
            yield f"{path}: row {position}", record
    nonfinite.warn()


def _iter_directory(root: Path, keys: Columns) -> Iterator[tuple[str, Any]]:
    base = os.path.abspath(root)
    for rel in _image_files(root):
        image = os.path.join(base, *rel.split("/"))
        yield image, {keys.id: rel, keys.image: image}


_READERS = {"jsonl": _iter_jsonl, "json": _iter_json_array, "parquet": _iter_parquet}


def _iter_raw(spec: str | Path, keys: Columns) -> Iterator[tuple[str, Any]]:
    if input_kind(spec) == "directory":
        input_files(spec)  # refuses a directory without images
        yield from _iter_directory(Path(spec), keys)
        return
    for path in input_files(spec):
        yield from _READERS[input_format(path)](path, keys)


def iter_records(spec: str | Path, keys: Columns) -> Iterator[tuple[str, dict]]:
    """Yield ``(record_id, record)`` in input order, validating as it goes.

    ``spec`` is a file, a glob of files or a directory of images (see :func:`input_files`).
    Records without an id (or with ``id: null``, which is removed) get ``row-<position>``,
    the position counting across all files of the input. Duplicate ids, records that are
    not objects, malformed JSON, lone surrogates and an empty input raise
    :class:`InputError`; NaN/Infinity become null with one warning per file.
    """
    seen: dict[str, str] = {}
    for position, (where, record) in enumerate(_iter_raw(spec, keys)):
        _check_record(where, record, keys)
        raw_id = record.get(keys.id)
        record_id = f"row-{position}" if raw_id is None else str(raw_id)
        if record_id in seen:
            raise InputError(
                f"{where}: duplicate id {record_id!r} (first seen at {seen[record_id]})"
            )
        seen[record_id] = where
        yield record_id, record
    if not seen:
        raise InputError(f"{spec}: the input holds no records")


# --------------------------------------------------------------------------- counting


class _Thrift:
    """Just enough of the Thrift compact protocol to skip to a field of a struct."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            value = self.byte()
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def field(self, last: int) -> tuple[int, int]:
        """The next field header of a struct: (field id, type); type 0 ends the struct."""
        header = self.byte()
        kind = header & 0x0F
        if kind == 0:
            return 0, 0
        delta = header >> 4
        return (last + delta if delta else self.zigzag()), kind

    def skip(self, kind: int) -> None:
        if kind in (1, 2):  # booleans live in the field header
            return
        if kind == 3:
            self.pos += 1
        elif kind in (4, 5, 6):
            self.varint()
        elif kind == 7:
            self.pos += 8
        elif kind == 8:
            size = self.varint()
            self.pos += size
        elif kind in (9, 10):
            header = self.byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self.varint()
            for _ in range(size):
                self.skip_element(element)
        elif kind == 11:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.skip_element(types >> 4)
                    self.skip_element(types & 0x0F)
        elif kind == 12:
            last = 0
            while True:
                last, inner = self.field(last)
                if inner == 0:
                    return
                self.skip(inner)
        elif kind == 13:  # uuid
            self.pos += 16
        else:
            raise ValueError(f"unknown Thrift compact type {kind}")
        if self.pos > len(self.data):
            raise IndexError("past the end of the metadata")

    def skip_element(self, kind: int) -> None:
        if kind in (1, 2):  # in a list, a boolean is one byte
            self.pos += 1
        else:
            self.skip(kind)


def parquet_num_rows(path: str | Path) -> int:
    """The row count of a Parquet file, read from its footer (standard library only).

    The footer ends with the 4-byte little-endian length of the FileMetaData and
    ``PAR1``; FileMetaData (Thrift compact protocol) holds ``num_rows`` as field 3.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size < 12:
                raise InputError(f"{path}: not a Parquet file (too short)")
            handle.seek(size - 8)
            tail = handle.read(8)
            if tail[4:] == b"PARE":
                raise InputError(f"{path}: encrypted Parquet footers are not supported")
            if tail[4:] != b"PAR1":
                raise InputError(f"{path}: not a Parquet file (no PAR1 at the end)")
            (length,) = struct.unpack("<I", tail[:4])
            if length > size - 12:
                raise InputError(f"{path}: corrupt Parquet footer (metadata length {length})")
            handle.seek(size - 8 - length)
            meta = _Thrift(handle.read(length))
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        last = 0
        while True:
            last, kind = meta.field(last)
            if kind == 0:
                break
            if last == 3 and kind == 6:
                return meta.zigzag()
            meta.skip(kind)
    except (IndexError, ValueError):
        pass
    raise InputError(f"{path}: corrupt Parquet footer (no row count)")


def _count_file(path: Path, keys: Columns) -> int:
    fmt = input_format(path)
    if fmt == "jsonl":
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    if fmt == "parquet":
        return parquet_num_rows(path)
    return len(_records_of(path, _load_json(path, path.read_bytes()), keys, notice=False))


def count_records(spec: str | Path, keys: Columns) -> int:
    """Count records cheaply, for planning shards (no validation, standard library only)."""
    if input_kind(spec) == "directory":
        return len(_image_files(Path(spec))) or len(input_files(spec))  # none: input_files refuses
    return sum(_count_file(path, keys) for path in input_files(spec))


def shard_names(n_records: int, shard_size: int) -> list[str]:
    """Names of the shards for ``n_records`` records (at least one shard)."""
    n_shards = max(1, -(-n_records // shard_size))
    return [f"shard-{k:05d}" for k in range(n_shards)]


def write_shards(
    input_path: str | Path, shard_paths: list[str | Path], shard_size: int, keys: Columns
) -> dict[str, str]:
    """Split the input into JSONL shards of ``shard_size`` records, in input order.

    Each shard line is ``{"id": ..., "index": ..., "record": {...}}``. Returns the shard
    (file stem) of every record id, in input order. Raises :class:`InputError` before writing anything final if
    the input is malformed or its size no longer matches the planned shards.
    """
    paths = [Path(p) for p in shard_paths]
    tmp_paths = [p.with_suffix(p.suffix + ".tmp") for p in paths]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    handles = [p.open("w", encoding="utf-8") for p in tmp_paths]
    shard_of: dict[str, str] = {}
    try:
        for index, (record_id, record) in enumerate(iter_records(input_path, keys)):
            shard = index // shard_size
            if shard >= len(handles):
                raise InputError(
                    f"{input_path}: more records than planned ({len(paths)} shards of "
                    f"{shard_size}); the file changed during planning"
                )
            line = {"id": record_id, "index": index, "record": record}
            handles[shard].write(encode(line) + "\n")
            shard_of[record_id] = paths[shard].stem
    finally:
        for handle in handles:
            handle.close()
    count = len(shard_of)
    if count <= (len(paths) - 1) * shard_size:
        for tmp in tmp_paths:
            tmp.unlink(missing_ok=True)
        raise InputError(
            f"{input_path}: {count} records do not fill the {len(paths)} planned shards"
        )
    for tmp, final in zip(tmp_paths, paths):
        tmp.replace(final)
    return shard_of
