"""corpus.wire.SSEDecoder, the one SSE decoder: the same events whatever the chunking."""

from __future__ import annotations

import pytest

from corpus.wire import Event, SSEDecoder

STREAM = (
    "\ufeff: a comment line\n"
    "event: message_start\n"
    'data: {"type":"message_start","x":"é€😀"}\n'
    "\n"
    "data: line one\r\n"
    "data: line two\r\n"
    "\r\n"
    "id: 7\r"
    "retry: 1500\r"
    "data:no space\r"
    "\r"
    "event: ping\n"
    "data\n"
    "\n"
    "event: lonely\n"
    "\n"
    "data: [DONE]\n"
    "\n"
).encode()

EXPECTED = [
    Event("message_start", '{"type":"message_start","x":"é€😀"}'),
    Event("message", "line one\nline two"),
    Event("message", "no space", id="7", retry=1500),
    Event("ping", "", id="7", retry=1500),
    Event("message", "[DONE]", id="7", retry=1500),
]


def decode(chunks: list[bytes]) -> list[Event]:
    dec = SSEDecoder()
    out: list[Event] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.flush()


def test_whole_stream_decodes_per_spec() -> None:
    # "data" with no colon is an empty data line: the ping event has data "" and is dispatched
    # because its data buffer holds one (empty) line; an event with no data is not.
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_boundary_gives_the_same_events(cut: int) -> None:
    assert decode([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_byte_by_byte_gives_the_same_events() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_three_way_splits_around_crlf_pairs() -> None:
    for i in range(len(STREAM)):
        if STREAM[i : i + 1] == b"\r":
            for j in range(i + 1, min(i + 3, len(STREAM))):
                assert decode([STREAM[:i], STREAM[i:j], STREAM[j:]]) == EXPECTED


def test_events_are_returned_by_the_chunk_that_completes_them() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\n") == []
    assert dec.feed(b"\n") == [Event("message", "a")]
    assert dec.feed(b"data: b\n\ndata: c") == [Event("message", "b")]
    assert dec.feed(b"") == []


def test_flush_dispatches_a_final_event_without_its_blank_line() -> None:
    dec = SSEDecoder()
    assert dec.feed(b'data: {"usage": 1}') == []
    assert dec.flush() == [Event("message", '{"usage": 1}')]
    assert dec.flush() == []


def test_cr_at_chunk_end_is_not_doubled_by_a_following_lf() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: x\r") == []
    assert dec.feed(b"\n\r\n") == [Event("message", "x")]
    assert dec.feed(b"data: y\n\n") == [Event("message", "y")]


BOM_TWO = b"\xef\xbb\xbfevent: a\ndata: 1\n\nevent: b\ndata: 2\n\n"


def test_a_byte_order_mark_then_two_events_gives_both_at_every_split() -> None:
    # replay's old decoder lost the first event here (the BOM glued to its `event` line)
    want = [Event("a", "1"), Event("b", "2")]
    for i in range(len(BOM_TWO) + 1):
        for j in range(i, len(BOM_TWO) + 1):
            assert decode([BOM_TWO[:i], BOM_TWO[i:j], BOM_TWO[j:]]) == want, (i, j)


def test_a_byte_order_mark_after_the_start_is_data() -> None:
    assert decode([b"data: x\n\n\xef\xbb\xbfdata: y\n\n"]) == [Event("message", "x")]
    assert decode([b"data: \xef\xbb\xbfy\n\n"]) == [Event("message", "\ufeffy")]


# replay's client stream shape: CRLF events, then an event ended by a bare CR pair
CLIENT = (
    b": comment\r\n"
    b"event: message_start\r\ndata: {\"a\":1}\r\n\r\n"
    b"data: line one\ndata: line two\n\n"
    b"data: [DONE]\r\r"
)


def test_mixed_line_ends_at_every_three_way_split() -> None:
    want = [Event("message_start", '{"a":1}'), Event("message", "line one\nline two"),
            Event("message", "[DONE]")]
    for i in range(len(CLIENT) + 1):
        for j in range(i, len(CLIENT) + 1):
            assert decode([CLIENT[:i], CLIENT[i:j], CLIENT[j:]]) == want, (i, j)
