"""Odd upstream and client shapes: the typed chat fast path agrees with the general one, and
no response or request shape makes the recorder drop a turn by raising."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from capture.wire import openai_chat
from corpus.wire import Event

_odd = st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.text(max_size=3), st.just([]))
_text = st.one_of(st.text(max_size=4), _odd)
_function = st.fixed_dictionaries({}, optional={"name": _text, "arguments": _text}) | _odd
_call = (
    st.fixed_dictionaries(
        {}, optional={"index": st.integers(0, 2) | _odd, "id": _text, "function": _function}
    )
    | _odd
)
_delta = (
    st.fixed_dictionaries(
        {},
        optional={
            "role": _text,
            "content": _text,
            "reasoning_content": _text,
            "reasoning": _text,
            "refusal": _text,
            "tool_calls": st.lists(_call, max_size=3) | _odd,
        },
    )
    | _odd
)
_choice = (
    st.fixed_dictionaries(
        {},
        optional={
            "index": st.integers(0, 2) | _odd,
            "delta": _delta,
            "finish_reason": _text,
            "logprobs": st.none(),
        },
    )
    | _odd
)
_usage = st.fixed_dictionaries(
    {}, optional={"prompt_tokens": _odd | st.integers(0, 9), "completion_tokens": st.integers(0, 9)}
)
_chunk = st.fixed_dictionaries(
    {"id": st.just("chatcmpl-1"), "object": st.just("chat.completion.chunk")},
    optional={
        "choices": st.lists(_choice, max_size=3) | _odd,
        "usage": _usage | _odd,
        "error": st.just({"type": "server_error"}) | st.none(),
    },
)


def _results(events: list[Event]) -> tuple[Any, Any]:
    fast, general = openai_chat.Stream(), openai_chat.Stream()
    for i, event in enumerate(events):
        fast.feed(event, float(i))
        if event.data == "[DONE]":
            general._r.complete = True
        else:
            general._general(event.data, event, float(i))
    return fast.result(), general.result()


@settings(max_examples=400, deadline=None)
@given(st.lists(_chunk, min_size=1, max_size=6), st.sampled_from(["message", "error", "x"]))
def test_typed_and_general_paths_agree(chunks: list[dict[str, Any]], name: str) -> None:
    events = [Event(data=json.dumps(c)) for c in chunks] + [Event(name, json.dumps(chunks[0]))]
    fast, general = _results([*events, Event(data="[DONE]")])
    assert fast == general


def test_typed_path_is_taken_for_usual_chunks() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    assert isinstance(openai_chat._CHUNK.decode(json.dumps(chunk)), openai_chat._Chunk)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(
            ["type", "choices", "delta", "message", "content", "tool_calls", "function", "name",
             "arguments", "id", "index", "usage", "error", "output", "item", "response",
             "content_block", "text", "stop_reason", "finish_reason", "status", "input"]
        ),
        inner,
        max_size=4,
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_json, min_size=1, max_size=4), st.sampled_from(["message", "error", "delta"]))
def test_no_response_shape_makes_a_parser_raise(values: list[Any], name: str) -> None:
    """An upstream (or a gateway) can send anything: every parser keeps going, so the turn
    is still recorded."""
    from capture.wire import FORMATS

    for fmt in FORMATS.values():
        stream = fmt.Stream()
        for i, value in enumerate(values):
            stream.feed(Event(name, json.dumps(value)), float(i))
        stream.result()
        for value in values:
            fmt.body(value)
            if isinstance(value, dict):
                items = [value]
                fmt.referenced_ids(items)
                fmt.ends_in_tool_result(items)


@settings(max_examples=300, deadline=None)
@given(_json, _json)
def test_any_request_shape_linearizes(items: Any, other: Any) -> None:
    """A body the provider would reject (a message that is a number, tools that are a
    string) still linearizes, so its failed turn is recorded instead of lost."""
    from capture.wire import FORMATS
    from corpus.wire import linearize

    for fmt in FORMATS.values():
        body = {fmt.ARRAY: items, "tools": other, "system": other, "instructions": other}
        linearize.segments(fmt.API, fmt.preamble(body))
        assert linearize.segments(fmt.API, body) == linearize.segments(fmt.API, body)


# -- the bulk path for whole chat streams answers what the event-by-event path does ----------

_extra = st.sampled_from(
    [b"data: [DONE]", b"data: ", b"data:{}", b": keep-alive", b"event: error", b"data: 1 2",
     b'data: {"choices": []}\ndata: {}', b"data: \xff", b'data: {"error": null}']
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_chunk.map(lambda c: b"data: " + json.dumps(c).encode()) | _extra, max_size=6),
    st.sampled_from([b"data: [DONE]\n\n", b"", b"\n", b"data: [DONE]\r\n\r\n"]),
    st.lists(st.integers(0, 400), max_size=4),
)
def test_chat_bulk_path_agrees_with_event_by_event(
    events: list[bytes], end: bytes, cuts: list[int]
) -> None:
    import pytest

    from capture.exchange import Exchange
    from capture.recorder import _response
    from capture.wire import FORMATS

    buf = b"".join(e + b"\n\n" for e in events) + end
    bounds = sorted({0, len(buf), *(c for c in cuts if c < len(buf))})
    ex = Exchange(api="openai-chat", headers={}, unix=0.0, t_start=0.0, request=[b"{}"])
    ex.status, ex.content_type, ex.t_headers = 200, "text/event-stream", 0.5
    ex.chunks = [(1.0 + i, buf[a:b]) for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    fmt = FORMATS["openai-chat"]
    bulk = _response(fmt, ex)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(openai_chat, "parse_stream", None)
        single = _response(fmt, ex)
    assert bulk == single


def test_plain_chat_streams_take_the_bulk_path() -> None:
    buf = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\ndata: [DONE]\n\n'
    found = openai_chat.parse_stream(buf, lambda i: 7.0)
    assert found is not None
    assert found.text == ["hi"]
    assert found.first_content == 7.0
    assert found.complete
