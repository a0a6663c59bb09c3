"""Incremental content decoding of response bodies (gzip, deflate, br, zstd), sans-I/O.

The proxy never changes `accept-encoding`: the agent gets the compressed bytes the upstream
sent, exactly as without the proxy, and the recorder decodes its own copy chunk by chunk, so an
event's arrival time is that of the chunk that completed it. Request bodies arrive whole and
use mitmproxy's own decoder (`mitmproxy.net.encoding.decode`).
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli
import zstandard


class DecodeError(ValueError):
    """A body that does not decode with its declared content-encoding."""


class Decoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._obj: zlib._Decompress | None = None

    def decode(self, data: bytes) -> bytes:
        if self._obj is None:
            if not data:
                return b""
            wbits = self._wbits
            if wbits == 15 and (data[0] & 0x0F) != 8:  # "deflate" sent raw, without zlib header
                wbits = -15
            self._obj = zlib.decompressobj(wbits)
        out = self._obj.decompress(data)
        # gzip members may be concatenated; start a new member on leftover bytes
        while self._obj.eof and self._obj.unused_data:
            rest = self._obj.unused_data
            self._obj = zlib.decompressobj(self._wbits)
            out += self._obj.decompress(rest)
        return out

    def flush(self) -> bytes:
        return self._obj.flush() if self._obj is not None else b""


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def decode(self, data: bytes) -> bytes:
        return self._obj.process(data) if data else b""

    def flush(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        self._ctx = zstandard.ZstdDecompressor()
        self._obj = self._ctx.decompressobj()

    def decode(self, data: bytes) -> bytes:
        out = self._obj.decompress(data) if data else b""
        while self._obj.eof and self._obj.unused_data:  # a new frame follows
            rest = self._obj.unused_data
            self._obj = self._ctx.decompressobj()
            out += self._obj.decompress(rest)
        return out

    def flush(self) -> bytes:
        return b""


class _Chain:
    """`content-encoding: gzip, br` means gzip was applied first: decode in reverse order."""

    def __init__(self, decoders: list[Decoder]) -> None:
        self._decoders = decoders

    def decode(self, data: bytes) -> bytes:
        for dec in self._decoders:
            data = dec.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for dec in self._decoders:
            data = dec.decode(data) + dec.flush()
        return data


def _one(name: str) -> Decoder:
    if name in ("", "identity", "none"):
        return _Identity()
    if name in ("gzip", "x-gzip"):
        return _Zlib(31)
    if name == "deflate":
        return _Zlib(15)
    if name == "br":
        return _Brotli()
    if name == "zstd":
        return _Zstd()
    raise DecodeError(f"unsupported content-encoding {name!r}")


def make(content_encoding: str | None) -> Decoder:
    """A decoder for a `content-encoding` header value (None or "" = identity)."""
    names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
    if not names:
        return _Identity()
    if len(names) == 1:
        return _one(names[0])
    return _Chain([_one(n) for n in reversed(names)])


def decode_all(chunks: list[bytes], content_encoding: str | None) -> bytes:
    """The whole decoded body of `chunks`; raises `DecodeError` when it doesn't decode."""
    dec = make(content_encoding)
    try:
        out = [dec.decode(c) for c in chunks]
        out.append(dec.flush())
    except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
        raise DecodeError(f"body does not decode as {content_encoding}: {exc}") from exc
    return b"".join(out)
