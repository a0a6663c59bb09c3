"""Bedrock's AWS event-stream framing, read back into Anthropic events: intact frames, and a
stream cut or corrupted part-way keeps what came before."""

from __future__ import annotations

import base64
import json
import struct
import zlib

from capture.exchange import Exchange
from capture.recorder import _response
from capture.wire import FORMATS
from corpus.wire.eventstream import CONTENT_TYPE, events, frame, frames, from_sse

CLAUDE = [
    {"type": "message_start", "message": {"id": "msg_1", "usage": {
        "input_tokens": 12, "cache_read_input_tokens": 30, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0,
     "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}},
    {"type": "content_block_delta", "index": 0,
     "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"a\"}"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
     "usage": {"output_tokens": 7}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 42}},
]


def bedrock_stream(events: list[dict[str, object]]) -> bytes:
    sse = b"".join(b"event: " + str(e["type"]).encode() + b"\ndata: " + json.dumps(e).encode()
                   + b"\n\n" for e in events)
    return from_sse(sse)


def exchange(pieces: list[bytes]) -> Exchange:
    ex = Exchange(api="anthropic-messages", headers={}, unix=0.0, t_start=0.0, t_sent=0.0)
    ex.status, ex.content_type, ex.t_headers = 200, CONTENT_TYPE, 0.5
    ex.chunks = [(1.0 + i, p) for i, p in enumerate(pieces)]
    return ex


def test_frames_round_trip_with_every_header_type() -> None:
    payload = b'{"bytes": "e30="}'
    head = b""
    typed = [(b":event-type", 7, struct.pack(">H", 5) + b"chunk"), (b"flag", 0, b""),
             (b"n", 4, struct.pack(">i", -3)), (b"id", 9, bytes(16)),
             (b"blob", 6, struct.pack(">H", 2) + b"\x00\x01")]
    for name, kind, value in typed:
        head += bytes([len(name)]) + name + bytes([kind]) + value
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    raw = body + struct.pack(">I", zlib.crc32(body))
    [(end, headers, got)] = list(frames(raw))
    assert (end, headers, got) == (len(raw), {":event-type": "chunk"}, payload)


def test_bedrock_stream_reads_as_the_anthropic_stream_it_carries() -> None:
    raw = bedrock_stream(CLAUDE)
    got = [json.loads(e.data) for _, e in events(raw)]
    assert got == CLAUDE
    # split across socket reads anywhere: each event is timed by the read completing its frame
    cut = len(raw) // 2
    result = _response(FORMATS["anthropic-messages"], exchange([raw[:cut], raw[cut:]]))
    assert result.usage is not None
    assert (result.usage.input, result.usage.cached, result.usage.output) == (42, 30, 7)
    assert [c.name for c in result.tool_calls] == ["Read"]
    assert result.stop == "tool_use"
    assert result.complete
    assert result.first_content in (1.0, 2.0)


def test_cut_or_corrupt_stream_keeps_the_events_before() -> None:
    raw = bedrock_stream(CLAUDE)
    ends = [end for end, _ in events(raw)]
    assert [e.event for _, e in events(raw[: ends[2] + 5])] == [
        "message_start", "content_block_start", "content_block_delta"]
    bad = bytearray(raw)
    bad[ends[1] + 20] ^= 0xFF  # inside the third frame: its CRC fails
    assert len(list(events(bytes(bad)))) == 2
    result = _response(FORMATS["anthropic-messages"], exchange([raw[: ends[3]]]))
    assert not result.complete
    assert result.usage is not None
    assert result.usage.output is None


def test_exception_frames_are_failed_turns_with_their_type() -> None:
    raw = bedrock_stream(CLAUDE[:1]) + frame(
        {":message-type": "exception", ":exception-type": "throttlingException"},
        b'{"message": "Too many requests, secret=abc"}')
    result = _response(FORMATS["anthropic-messages"], exchange([raw]))
    assert result.error == "error:throttling_exception"
    # a chunk whose bytes aren't an Anthropic event is skipped, not fatal
    odd = frame({":event-type": "chunk", ":message-type": "event"},
                json.dumps({"bytes": base64.b64encode(b"not json").decode()}).encode())
    assert list(events(odd)) == []
