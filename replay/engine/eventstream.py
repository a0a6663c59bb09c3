"""AWS event-stream framing, as Bedrock's InvokeModelWithResponseStream sends a Claude stream.

Each Anthropic SSE event becomes one binary frame: a prelude (total and header lengths, CRC32),
string headers (`:event-type: chunk`, `:message-type: event`), a JSON payload holding the
event's JSON base64-encoded (`{"bytes": …}`), and a CRC32 of the whole frame. An `error` event
becomes an `exception` frame. The official SDK (`AnthropicBedrock`, through botocore) checks
both CRCs.
"""

from __future__ import annotations

import base64
import struct
import zlib

import msgspec
from aiohttp import web

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def _headers(pairs: dict[str, str]) -> bytes:
    out = b""
    for name, value in pairs.items():
        raw = value.encode()
        out += bytes([len(name)]) + name.encode() + bytes([_STRING])
        out += struct.pack(">H", len(raw)) + raw
    return out


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message."""
    head = _headers(headers)
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def from_sse(data: bytes) -> bytes:
    """Frames for complete SSE events (`event: …\\ndata: …\\n\\n`, as the Messages handler
    writes them)."""
    out = b""
    for block in data.split(b"\n\n"):
        name, payload = b"", b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:]
            elif line.startswith(b"data: "):
                payload = line[6:]
        if not payload:
            continue
        if name == b"error":
            err = msgspec.json.decode(payload).get("error", {})
            out += frame(
                {":message-type": "exception", ":exception-type": "modelStreamErrorException",
                 ":content-type": "application/json"},
                msgspec.json.encode({"message": str(err.get("message", ""))}),
            )
        else:
            chunk = msgspec.json.encode({"bytes": base64.b64encode(payload).decode()})
            out += frame(
                {":event-type": "chunk", ":content-type": "application/json",
                 ":message-type": "event"},
                chunk,
            )
    return out


class EventStreamResponse(web.StreamResponse):
    """A streaming response whose writes are SSE events, sent as event-stream frames."""

    def __init__(self) -> None:
        super().__init__(headers={"Content-Type": CONTENT_TYPE})

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await super().write(from_sse(bytes(data)))
