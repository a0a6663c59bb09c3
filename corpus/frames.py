"""Frame-level I/O: records <-> length-prefixed msgpack <-> independent zstd frames.

`scan()` walks a file frame by frame with byte offsets and never raises on bad bytes: it yields
what is intact and reports the first problem, so readers, `validate` and `salvage` share one
notion of "intact".
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
import zstandard

from corpus.records import Record

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_LEN = struct.Struct("<I")
_CHUNK = 1 << 20

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


def pack(records: list[Record]) -> bytes:
    """Length-prefixed msgpack of `records` (the uncompressed body of one frame)."""
    parts: list[bytes] = []
    for rec in records:
        body = _encoder.encode(rec)
        parts.append(_LEN.pack(len(body)))
        parts.append(body)
    return b"".join(parts)


def unpack(body: bytes) -> tuple[list[Record], str | None]:
    """Records of a frame body, and a description of the first undecodable part (or None)."""
    out: list[Record] = []
    pos, end = 0, len(body)
    while pos < end:
        if end - pos < _LEN.size:
            return out, f"record at body byte {pos} has a cut length prefix"
        (size,) = _LEN.unpack_from(body, pos)
        pos += _LEN.size
        if size > end - pos:
            return out, f"record at body byte {pos} claims {size} bytes, {end - pos} remain"
        try:
            out.append(_decoder.decode(body[pos : pos + size]))
        except msgspec.DecodeError as exc:
            return out, f"record at body byte {pos} does not decode ({exc})"
        pos += size
    return out, None


def compress(body: bytes, level: int) -> bytes:
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(body)


@dataclass(frozen=True, slots=True)
class Frame:
    index: int
    offset: int  # byte offset of the frame in the file
    records: list[Record]


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a scan stopped early: `truncated` (a cut tail) or `corrupt` (bad bytes)."""

    kind: str
    index: int
    offset: int
    detail: str
    partial: list[Record]  # complete records recovered from the damaged frame's readable prefix


def scan(path: str | os.PathLike[str]) -> Iterator[Frame | Problem]:
    """Yield each intact frame, then at most one `Problem` (the scan ends there)."""
    with open(path, "rb") as f:
        yield from _scan(f)


def _scan(f) -> Iterator[Frame | Problem]:  # type: ignore[no-untyped-def]
    dctx = zstandard.ZstdDecompressor()
    buf = b""
    base = 0  # file offset of buf[0]
    index = 0
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
            yield Problem("corrupt", index, base, "no zstd frame starts here", [])
            return
        dobj = dctx.decompressobj()
        out: list[bytes] = []
        consumed = 0
        error: str | None = None
        pending = buf
        buf = b""
        while True:
            try:
                out.append(dobj.decompress(pending))
            except zstandard.ZstdError as exc:
                error = str(exc)
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
        body = b"".join(out)
        if error is not None or not dobj.eof:
            records, _ = unpack(body)
            kind = "corrupt" if error is not None else "truncated"
            detail = error or "the file ends inside this frame"
            yield Problem(kind, index, base, detail, records)
            return
        records, bad = unpack(body)
        if bad is not None:
            yield Problem("corrupt", index, base, bad, records)
            return
        yield Frame(index, base, records)
        index += 1
        base += consumed
