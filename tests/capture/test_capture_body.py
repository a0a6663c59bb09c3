"""Incremental body parsing: the same result as a full parse, whatever the memo."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from capture.body import BodyError, parse, shared
from capture.recorder import Recorder
from capture.wire import FORMATS
from corpus import Header, Writer
from corpus.wire import linearize


def dumps(body: dict[str, Any], **kw: Any) -> bytes:
    return json.dumps(body, **kw).encode()


def conversation(n: int) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are a careful paralegal."}]
    for i in range(n):
        msgs.append({"role": "user", "content": f"question {i} — ünïcode ✓"})
        msgs.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function",
             "function": {"name": "lookup", "arguments": json.dumps({"q": i})}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": "x" * i})
    return msgs


def check(raw: bytes, memo: Any = None) -> Any:
    got = parse(raw, "messages", memo)
    want = msgspec.json.decode(raw)
    items = want.get("messages", [])
    assert len(got.items) == len(items)
    for i, item in enumerate(got.items):  # taken-over elements are None, except the last
        assert item == items[i] if item is not None else i < got.reused
    if items:
        assert got.items[-1] == items[-1]
    got.notes = [f"note {i}" for i in range(len(items))]  # what a caller would keep
    got.digests = list(range(len(items)))
    assert {**got.fields} == {k: v for k, v in want.items() if k != "messages"}
    for end in got.ends:  # every element ends where the next separator or "]" begins
        assert raw[end : end + 1] in (b",", b"]") or raw[end : end + 1].isspace()
    return got


@pytest.mark.parametrize("kw", [{}, {"indent": 2}, {"separators": (",", ":")},
                                {"ensure_ascii": False}])
def test_growing_conversation_reuses_the_previous_parse(kw: dict[str, Any]) -> None:
    memo = None
    for n in range(6):
        body = {"model": "gpt-4o", "messages": conversation(n), "stream": True,
                "tools": [{"type": "function", "function": {"name": "lookup"}}]}
        got = check(dumps(body, **kw), memo)
        if memo is not None:
            assert got.reused == len(memo.items)
            assert got.fields_same
        memo = got


def test_messages_after_volatile_fields_still_parse() -> None:
    first = check(dumps({"system": "nonce=1", "messages": conversation(2), "max_tokens": 5}))
    second = check(dumps({"system": "nonce=2", "messages": conversation(3), "max_tokens": 5}),
                   first)
    assert second.reused == 0
    assert not second.fields_same


def test_changed_tail_keeps_leading_items() -> None:
    first = check(dumps({"messages": conversation(2), "metadata": {"n": 1}}))
    second = check(dumps({"messages": conversation(3), "metadata": {"n": 2}}), first)
    assert second.reused == len(first.items)
    assert not second.fields_same
    assert second.fields["metadata"] == {"n": 2}


def test_edited_history_reuses_only_the_common_prefix() -> None:
    msgs = conversation(3)
    first = check(dumps({"messages": msgs}))
    edited = [*msgs[:4], {"role": "user", "content": "compacted summary"}]
    second = check(dumps({"messages": edited}), first)
    assert second.reused == 4


def test_a_different_conversation_is_parsed_in_full() -> None:
    first = check(dumps({"messages": conversation(2)}))
    other = check(dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}), first)
    assert other.reused == 0
    assert shared(dumps({"model": "m"}), first) == -1


def test_nested_key_of_the_same_name_is_not_the_array() -> None:
    body = {"metadata": {"messages": [1, 2]}, "messages": [{"role": "user", "content": "x"}]}
    got = check(dumps(body))
    assert got.items == [{"role": "user", "content": "x"}]
    again = check(dumps({**body, "messages": [*body["messages"], {"role": "user"}]}), got)
    assert again.reused == 1


def test_non_array_conversations_and_non_objects() -> None:
    got = parse(dumps({"model": "m", "input": "just text"}), "input")
    assert not got.array
    assert got.fields["input"] == "just text"
    with pytest.raises(BodyError):
        parse(b"[1, 2]", "messages")
    with pytest.raises(BodyError):
        parse(b"not json", "messages")


def test_tampered_memo_bytes_fall_back_to_a_full_parse() -> None:
    first = check(dumps({"messages": conversation(1), "model": "m"}))
    # same length, different bytes inside the last element: not a prefix any more
    raw = dumps({"messages": conversation(1), "model": "m"}).replace(b"question 0", b"question 9")
    check(raw, first)


CASES = {
    "openai-chat": lambda n: {"model": "m", "messages": conversation(n),
                              "tools": [{"type": "function", "function": {"name": "lookup"}}]},
    "anthropic-messages": lambda n: {
        "model": "m",
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1.2; cch=ab12;"},
            {"type": "text", "text": "You are Claude Code."},
        ],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": f"do {i}"}]}
                     for i in range(n + 1)],
    },
    "openai-responses": lambda n: {
        "model": "m", "instructions": "be brief",
        "input": [{"type": "message", "role": "user", "content": f"step {i}"} for i in range(n + 1)]
        + [{"type": "function_call", "call_id": "k", "name": "shell", "arguments": "{}"},
           {"type": "function_call_output", "call_id": "k", "output": "ok"}],
    },
}


@pytest.mark.parametrize("api", list(CASES))
def test_recorder_segments_equal_linearize_segments(api: str, tmp_path: Any) -> None:
    rec = Recorder(Writer(tmp_path / "c.zst", Header(), keys=False))
    fmt = FORMATS[api]
    memo = None
    try:
        for n in range(4):
            body = CASES[api](n)
            req = rec._read(fmt, dumps(body), memo)
            assert req.pre_segments + req.segments == linearize.segments(api, body)
            memo = req.parsed
    finally:
        rec.close()


def test_claude_code_layout_with_a_changing_nonce_after_messages() -> None:
    def body(n: int, nonce: str) -> dict[str, Any]:
        msgs: list[dict[str, Any]] = [{"role": "user", "content": "start"}]
        for i in range(n):
            msgs.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": f"t{i}", "name": "Bash",
                 "input": {"cmd": 'echo "],\\"temperature\\":1"', "nested": [[1], {"a": [2]}]}}]})
            msgs.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": f"t{i}",
                 "content": '],"temperature":1,"system":[ tricky'}]})
        return {"model": "claude", "messages": msgs, "temperature": 1,
                "system": [{"type": "text", "text": f"billing cch={nonce};"}],
                "tools": [{"name": "Bash"}], "stream": True}

    memo = check(dumps(body(0, "a1"), separators=(",", ":")))
    for n in range(1, 5):
        got = check(dumps(body(n, f"n{n}"), separators=(",", ":")), memo)
        assert got.reused == len(memo.items)  # only the new messages were decoded
        assert got.fields["system"][0]["text"] == f"billing cch=n{n};"
        memo = got
