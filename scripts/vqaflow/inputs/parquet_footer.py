"""A Parquet file's row count, read from its footer with the standard library only (just
enough of the Thrift compact protocol to reach ``FileMetaData.num_rows``)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from .specs import InputError


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
