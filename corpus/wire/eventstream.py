"""AWS event-stream frames, both ways: how Bedrock's InvokeModelWithResponseStream carries a
Claude stream (sans-I/O).

A frame is a prelude (total length, headers length, CRC32 of those 8 bytes), typed headers, a
payload and a CRC32 of everything before it. Bedrock's `chunk` events hold an Anthropic stream
event, JSON, base64-encoded in the payload's `bytes`; `exception` frames carry an error type
(`:exception-type`, e.g. throttlingException).

Decoding (capture): `events()` turns a recorded stream back into the SSE events the Anthropic
parser reads, each with the end offset of its frame (for its arrival time); a frame that is cut
or fails its CRC ends the stream there, keeping what came before.
Encoding (the simulated engine): `encode()` makes the frame for one SSE event, `frame()` any
frame; the official SDK (`AnthropicBedrock`, through botocore) checks both CRCs.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from collections.abc import Iterator

import msgspec

from corpus.wire.sse import Event, SSEDecoder

CONTENT_TYPE = "application/vnd.amazon.eventstream"

# value type -> fixed size (bytes, string: a 2-byte length first)
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_BYTES, _STRING = 6, 7


def _encode_headers(pairs: dict[str, str]) -> bytes:
    out = b""
    for name, value in pairs.items():
        raw = value.encode()
        out += bytes([len(name)]) + name.encode() + bytes([_STRING])
        out += struct.pack(">H", len(raw)) + raw
    return out


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string `headers`."""
    head = _encode_headers(headers)
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def encode(event: Event) -> bytes:
    """The frame Bedrock sends for one Anthropic SSE event: a `chunk` holding its JSON, or for
    an `error` event an `exception` frame (type `modelStreamErrorException`, the message kept)."""
    if event.event == "error":
        try:
            err = msgspec.json.decode(event.data).get("error", {})
        except (msgspec.DecodeError, AttributeError):
            err = {}
        if not isinstance(err, dict):
            err = {}
        return frame(
            {
                ":message-type": "exception",
                ":exception-type": "modelStreamErrorException",
                ":content-type": "application/json",
            },
            msgspec.json.encode({"message": str(err.get("message", ""))}),
        )
    chunk = msgspec.json.encode({"bytes": base64.b64encode(event.data.encode()).decode()})
    return frame(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
        chunk,
    )


def from_sse(data: bytes) -> bytes:
    """The frames for the SSE events in `data` (a whole stream: a last event without its blank
    line counts too)."""
    decoder = SSEDecoder()
    return b"".join(encode(e) for e in (*decoder.feed(data), *decoder.flush()))


def _headers(raw: bytes) -> dict[str, str] | None:
    """String headers of a frame (other types skipped), or None when they don't parse."""
    out: dict[str, str] = {}
    pos, end = 0, len(raw)
    while pos < end:
        size = raw[pos]
        name = raw[pos + 1 : pos + 1 + size].decode("utf-8", "replace")
        pos += 1 + size
        if pos >= end:
            return None
        kind = raw[pos]
        pos += 1
        if kind in (_BYTES, _STRING):
            if pos + 2 > end:
                return None
            (n,) = struct.unpack_from(">H", raw, pos)
            value = raw[pos + 2 : pos + 2 + n]
            pos += 2 + n
            if kind == _STRING:
                out[name] = value.decode("utf-8", "replace")
        elif kind in _FIXED:
            pos += _FIXED[kind]
        else:
            return None
    return out if pos == end else None


def frames(buf: bytes) -> Iterator[tuple[int, dict[str, str], bytes]]:
    """(end offset, string headers, payload) of each whole, intact frame in `buf`."""
    pos = 0
    while pos + 16 <= len(buf):
        total, head_len = struct.unpack_from(">II", buf, pos)
        (prelude_crc,) = struct.unpack_from(">I", buf, pos + 8)
        if zlib.crc32(buf[pos : pos + 8]) != prelude_crc or total < 16 + head_len:
            return
        end = pos + total
        if end > len(buf):
            return  # cut: the stream stopped mid-frame
        (crc,) = struct.unpack_from(">I", buf, end - 4)
        if zlib.crc32(buf[pos : end - 4]) != crc:
            return
        headers = _headers(buf[pos + 12 : pos + 12 + head_len])
        if headers is None:
            return
        yield end, headers, buf[pos + 12 + head_len : end - 4]
        pos = end


def _snake(name: str) -> str:
    """throttlingException -> throttling_exception (error types are kept in that form)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def events(buf: bytes) -> Iterator[tuple[int, Event]]:
    """The Anthropic SSE events a Bedrock stream carries, with the end offset of each frame."""
    for end, headers, payload in frames(buf):
        kind = headers.get(":message-type", "event")
        if kind in ("exception", "error"):
            label = headers.get(":exception-type") or headers.get(":error-code") or ""
            data = msgspec.json.encode({"type": "error", "error": {"type": _snake(label)}})
            yield end, Event("error", data.decode())
            continue
        if headers.get(":event-type") != "chunk":
            continue
        try:
            chunk = msgspec.json.decode(payload)
            text = base64.b64decode(chunk["bytes"], validate=True).decode()
            name = msgspec.json.decode(text)["type"]
        except (msgspec.DecodeError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            continue  # not a Claude event: nothing to count
        if isinstance(name, str):
            yield end, Event(name, text)
