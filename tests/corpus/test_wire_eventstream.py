"""corpus.wire.eventstream both ways: what the encoder writes the decoder reads back, whole or
cut, and error events travel as exception frames."""

from __future__ import annotations

import json

from corpus.wire import Event
from corpus.wire.eventstream import encode, events, frames, from_sse

EVENTS = [
    Event("message_start", json.dumps({"type": "message_start", "message": {"id": "m"}})),
    Event("content_block_delta", json.dumps(
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "é€😀"}})),
    Event("message_stop", json.dumps({"type": "message_stop"})),
]


def test_encoded_events_decode_to_the_same_events() -> None:
    raw = b"".join(encode(e) for e in EVENTS)
    got = list(events(raw))
    assert [e for _, e in got] == EVENTS
    assert got[-1][0] == len(raw)  # each event carries the end offset of its frame


def test_from_sse_frames_every_event_of_a_stream_even_an_unterminated_last() -> None:
    sse = b"".join(f"event: {e.event}\ndata: {e.data}\n\n".encode() for e in EVENTS)
    assert from_sse(sse) == b"".join(encode(e) for e in EVENTS)
    assert [e for _, e in events(from_sse(sse[:-2]))] == EVENTS


def test_a_cut_at_any_byte_keeps_exactly_the_whole_frames_before_it() -> None:
    raw = b"".join(encode(e) for e in EVENTS)
    ends = [end for end, _, _ in frames(raw)]
    for cut in range(len(raw) + 1):
        assert len(list(events(raw[:cut]))) == sum(end <= cut for end in ends), cut


def test_an_error_event_becomes_an_exception_frame_and_reads_back_as_an_error() -> None:
    err = Event("error", json.dumps({"type": "error", "error": {
        "type": "overloaded_error", "message": "busy"}}))
    [(_, headers, payload)] = list(frames(encode(err)))
    assert headers[":message-type"] == "exception"
    assert json.loads(payload) == {"message": "busy"}
    [(_, back)] = list(events(encode(err)))
    assert back.event == "error"
    assert json.loads(back.data)["error"]["type"] == "model_stream_error_exception"
