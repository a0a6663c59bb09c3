"""Frame-level I/O: records <-> length-prefixed msgpack <-> independent zstd frames.

`scan()` walks a file frame by frame with byte offsets and never raises on bad bytes: it yields
what is intact and reports the first problem, so readers, `validate` and `salvage` share one
notion of "intact". Frames carry a zstd content checksum, so a flipped byte is caught, not read.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import msgspec
import zstandard

from corpus.records import KINDS, Record, Turns, Unknown

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_BODY = 1 << 31
"""Largest decompressed frame a reader accepts (a writer's frames are far smaller)."""
_LEN = struct.Struct("<I")
_CHUNK = 1 << 20

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


class _Tagged(msgspec.Struct):
    """Any record: just its kind (the tag every record carries)."""

    type: str


_kind = msgspec.msgpack.Decoder(_Tagged)


def pack(records: Sequence[Record | Unknown]) -> bytes:
    """Length-prefixed msgpack of `records` (the uncompressed body of one frame)."""
    return b"".join(pieces(records))


_COLUMN = 4096  # columns this long get zstd blocks of their own (see `compress`)


def pieces(records: Sequence[Record | Unknown]) -> list[bytes]:
    """`pack(records)` in pieces that end where a long column of a `Turns` record ends."""
    parts: list[bytes] = []
    cuts: list[int] = []
    size = 0
    for rec in records:
        body = rec.raw if isinstance(rec, Unknown) else _encoder.encode(rec)
        parts += (_LEN.pack(len(body)), body)
        size += _LEN.size
        if isinstance(rec, Turns):
            cuts += [size + end for end in _column_ends(rec, body)]
        size += len(body)
    whole = b"".join(parts)
    return [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True) if a < b]


def _column_ends(rec: Turns, body: bytes) -> list[int]:
    """Offsets in `body` (the msgpack of `rec`) just after each column of `_COLUMN` bytes or
    more. The map is re-encoded entry by entry and trusted only if that gives the same bytes."""
    ends: list[int] = []
    pos = 3  # a struct is a map16: 0xde and a 2-byte count
    entries: list[tuple[str, object]] = [("type", "turns")]
    entries += [(name, getattr(rec, name)) for name in rec.__struct_fields__]
    for name, value in entries:
        entry = _encoder.encode(name) + _encoder.encode(value)
        if body[pos : pos + len(entry)] != entry:
            continue  # an omitted default
        pos += len(entry)
        if isinstance(value, bytes) and len(value) >= _COLUMN:
            ends.append(pos)
    return ends if body[:1] == b"\xde" and pos == len(body) else []


def _decode(raw: bytes) -> Record | Unknown:
    """One record; a well-formed record of a kind not in `KINDS` is `Unknown` (skipped by
    readers: a v1 file may gain record kinds), anything else undecodable raises."""
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, ValueError):
        try:
            kind = _kind.decode(raw).type
        except (msgspec.DecodeError, ValueError):
            kind = ""
        if not kind or kind in KINDS:
            raise
        return Unknown(kind, raw)


def unpack(body: bytes) -> tuple[list[Record | Unknown], str | None]:
    """Records of a frame body, and a description of the first undecodable part (or None)."""
    out: list[Record | Unknown] = []
    pos, end = 0, len(body)
    while pos < end:
        if end - pos < _LEN.size:
            return out, f"record at body byte {pos} has a cut length prefix"
        (size,) = _LEN.unpack_from(body, pos)
        pos += _LEN.size
        if size > end - pos:
            return out, f"record at body byte {pos} claims {size} bytes, {end - pos} remain"
        try:
            out.append(_decode(body[pos : pos + size]))
        # msgspec raises UnicodeDecodeError (a ValueError) for bad UTF-8 in a tag value
        except (msgspec.DecodeError, ValueError) as exc:
            return out, f"record at body byte {pos} does not decode ({exc})"
        pos += size
    return out, None


def compress(body: bytes | Sequence[bytes], level: int) -> bytes:
    """One checksummed zstd frame of `body`. Given in pieces (see `pieces`), each piece ends a
    zstd block, so a long column is coded with entropy tables of its own (smaller files; any
    zstd reader reads the frame as usual)."""
    cctx = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True)
    if isinstance(body, bytes):
        return cctx.compress(body)
    obj = cctx.compressobj(size=sum(map(len, body)))
    out = []
    for piece in body:
        out.append(obj.compress(piece))
        out.append(obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    out.append(obj.flush())
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class Frame:
    index: int
    offset: int  # byte offset of the frame in the file
    records: list[Record | Unknown]


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a scan stopped early: `truncated` (a cut tail) or `corrupt` (bad bytes).

    `partial` holds the complete records of the damaged frame's readable prefix when they can
    be trusted: for a cut tail (zstd emits only whole, correct blocks) and for a frame that
    decompressed and checksummed but holds an undecodable record; never for a zstd error,
    whose earlier output may already be wrong. `zstd_ok` says the frame itself decompressed.
    """

    kind: str
    index: int
    offset: int
    detail: str
    partial: list[Record | Unknown]
    zstd_ok: bool = False


def scan(
    path: str | os.PathLike[str], *, start: int = 0, index: int = 0
) -> Iterator[Frame | Problem]:
    """Yield each intact frame from byte `start` (numbered from `index`), then at most one
    `Problem` (the scan ends there)."""
    with open(path, "rb") as f:
        f.seek(start)
        yield from _scan(f, start, index)


def resync(path: str | os.PathLike[str], offset: int) -> int | None:
    """Byte offset of the next zstd frame magic after `offset`, or None (for salvage: a frame
    that follows a damaged one still starts with the magic)."""
    with open(path, "rb") as f:
        pos = offset + 1
        f.seek(pos)
        carry = b""
        while chunk := f.read(_CHUNK):
            data = carry + chunk
            found = data.find(ZSTD_MAGIC)
            if found >= 0:
                return pos - len(carry) + found
            carry = data[-(len(ZSTD_MAGIC) - 1) :]
            pos += len(chunk)
    return None


def _scan(f: BinaryIO, base: int, index: int) -> Iterator[Frame | Problem]:
    dctx = zstandard.ZstdDecompressor()
    buf = b""  # bytes read from f but not yet consumed; buf[0] is at file offset `base`
    eof = False
    while True:
        while not eof and len(buf) < _CHUNK:
            chunk = f.read(_CHUNK)
            if not chunk:
                eof = True
            buf += chunk
        if not buf:
            return
        if buf[:4] != ZSTD_MAGIC:
            if len(buf) < 4 and ZSTD_MAGIC.startswith(buf):  # cut inside the magic itself
                yield Problem("truncated", index, base, "the file ends inside this frame", [])
            else:
                yield Problem("corrupt", index, base, "no zstd frame starts here", [])
            return
        dobj = dctx.decompressobj()
        out: list[bytes] = []
        size = consumed = 0
        error: str | None = None
        pending, buf = buf, b""
        while True:
            try:
                piece = dobj.decompress(pending)
            except zstandard.ZstdError as exc:
                error = str(exc)
                break
            out.append(piece)
            size += len(piece)
            if size > MAX_BODY:
                error = f"frame decompresses to more than {MAX_BODY} bytes"
                break
            if dobj.eof:
                rest = dobj.unused_data
                consumed += len(pending) - len(rest)
                buf = rest
                break
            consumed += len(pending)
            pending = f.read(_CHUNK) if not eof else b""
            if not pending:
                eof = True
                break
        if error is not None:
            yield Problem("corrupt", index, base, error, [])
            return
        records, bad = unpack(b"".join(out))
        if not dobj.eof:
            yield Problem("truncated", index, base, "the file ends inside this frame", records)
            return
        if bad is not None:
            yield Problem("corrupt", index, base, bad, records, zstd_ok=True)
            return
        yield Frame(index, base, records)
        index += 1
        base += consumed
