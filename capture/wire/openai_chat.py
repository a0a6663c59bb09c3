"""OpenAI Chat Completions (`POST …/chat/completions`): request shape and response parsing.

Streams are `data: {chat.completion.chunk}` events ending in `data: [DONE]`; usage arrives in a
last chunk with empty `choices` when the client asked for it (`stream_options.include_usage`).
Reasoning deltas use the de-facto `reasoning_content` (DeepSeek, vLLM) or `reasoning`
(OpenRouter) fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from capture.wire.result import (
    Result,
    ToolCall,
    Usage,
    count,
    error_label,
    error_of,
    loads,
    safe,
)
from corpus.wire import Event, apis

API = apis.OPENAI_CHAT
ARRAY = "messages"


def preamble(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The body fields that linearize before the message list (tools; system is a message)."""
    return {"tools": fields["tools"]} if fields.get("tools") else {}


def referenced_ids(items: Sequence[Any]) -> set[str]:
    """Tool-call ids that `items` (messages) mention: calls echoed back and results."""
    out: set[str] = set()
    for msg in items:
        if not isinstance(msg, dict):
            continue
        if isinstance(msg.get("tool_call_id"), str):
            out.add(msg["tool_call_id"])
        for call in _list(msg.get("tool_calls")):
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                out.add(call["id"])
    return out


def ends_in_tool_result(items: Sequence[Any]) -> bool:
    last = items[-1] if items else None
    return isinstance(last, dict) and last.get("role") in ("tool", "function")


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details")
    cached = count(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is None:
        cached = count(raw.get("prompt_cache_hit_tokens"))  # DeepSeek
    out_details = raw.get("completion_tokens_details")
    reasoning = (
        count(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else None
    )
    return Usage(
        input=count(raw.get("prompt_tokens")),
        cached=cached,
        output=count(raw.get("completion_tokens")),
        reasoning=reasoning,
    )


_TEXT_KEYS = ("content", "reasoning_content", "reasoning", "refusal")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _index(value: Any) -> Any:
    """A choice or tool-call index as a key: odd values (null, a list) all count as one."""
    return value if isinstance(value, int | str) else None


# The usual chunk, typed: decoding into these skips building a dict per level, and most of a
# long answer is such chunks. A chunk of any other shape (a field of an unexpected type, an
# error) fails to decode here and takes the general path, so the result is the same.
class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _CallDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    refusal: str | None = None
    tool_calls: list[_CallDelta] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    usage: Any = None
    error: Any = msgspec.UNSET


_CHUNK = msgspec.json.Decoder(_Chunk)
# `[[chunk],[chunk],…]`: each event's data wrapped in its own brackets, so the one decode call
# fails unless every event holds exactly one chunk object
_ONE_EACH = msgspec.json.Decoder(list[tuple[_Chunk]])
_DONE = b"data: [DONE]"
_DONE_LAST = b"\n\ndata: [DONE]\n\n"


def parse_stream(buf: bytes, when: Callable[[int], float]) -> Result | None:
    """A whole recorded stream in one pass, or None unless it is in the plain form OpenAI and
    its look-alikes send: `data: {chunk}` events, LF line ends, an optional `data: [DONE]`
    last, every chunk of the usual shape. `when(i)` is the arrival time of event i (asked
    for the first content event only). The answer is `Stream`'s for the same events: the work
    per event is one pass over its typed chunk, with no Python-level line splitting (the event
    framing becomes JSON array punctuation in one `replace`: a JSON text holds no raw LF)."""
    if not buf.startswith(b"data: ") or not buf.endswith(b"\n\n"):
        return None
    done = buf.endswith(_DONE_LAST)
    body = buf[6 : len(buf) - len(_DONE_LAST) if done else -2].replace(b"\n\ndata: ", b"],[")
    if b"\n" in body or b"\r" in body:
        return None  # an event of another form (a field, a comment, several lines, CR)
    try:
        chunks = _ONE_EACH.decode(b"[[" + body + b"]]")
    except msgspec.DecodeError:  # (ValidationError too) not all usual chunks, or [DONE] alone
        return None
    stream = Stream()
    r = stream._r
    for i, (chunk,) in enumerate(chunks):
        if chunk.error is not msgspec.UNSET:
            return None
        if r.first_content is None:
            stream._typed(chunk, -1.0)
            if r.first_content is not None:
                r.first_content = when(i)
        else:
            stream._typed(chunk, 0.0)
    r.complete = done
    return stream.result()


class Stream:
    """Accumulates a chat.completion.chunk stream; `feed` each event with its arrival time."""

    def __init__(self) -> None:
        self._r = Result()
        self._calls: dict[tuple[int, int], list[str]] = {}  # (choice, index) -> [id, name]

    def feed(self, event: Event, t: float) -> None:
        data = event.data
        if data == "[DONE]":
            self._r.complete = True
            return
        if event.event == "message":
            try:
                typed = _CHUNK.decode(data)
            except msgspec.DecodeError:  # (ValidationError too) another shape: general path
                pass
            else:
                if typed.error is msgspec.UNSET:
                    self._typed(typed, t)
                    return
        self._general(data, event, t)

    def _typed(self, chunk: _Chunk, t: float) -> None:
        r = self._r
        if chunk.usage is not None:
            usage = _usage(chunk.usage)
            if usage is not None:
                r.usage = usage
        for choice in chunk.choices or ():
            index = choice.index
            delta = choice.delta
            if delta is not None:
                content = False
                for value in (delta.content, delta.reasoning_content, delta.reasoning,
                              delta.refusal):
                    if value:
                        r.text.append(value)
                        content = True
                for call in delta.tool_calls or ():
                    content = True
                    slot = self._calls.setdefault((index, call.index), ["", ""])
                    if call.id is not None:
                        slot[0] = call.id
                    fn = call.function
                    if fn is not None:
                        if fn.name is not None:
                            slot[1] += fn.name
                        if fn.arguments is not None:
                            r.text.append(fn.arguments)
                if content and r.first_content is None:
                    r.first_content = t
            if choice.finish_reason and (index == 0 or r.stop is None):
                r.stop = safe(choice.finish_reason) or "other"

    def _general(self, data: str, event: Event, t: float) -> None:
        r = self._r
        chunk = loads(data)
        if not isinstance(chunk, dict):
            return
        if event.event == "error" or "error" in chunk:
            r.error = error_of(chunk) if "error" in chunk else error_label(chunk.get("type"))
            return
        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            usage = _usage(raw_usage)
            if usage is not None:
                r.usage = usage
        for choice in _list(chunk.get("choices")):
            if not isinstance(choice, dict):
                continue
            index = _index(choice.get("index", 0))
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = False
                if delta:
                    for key in _TEXT_KEYS:
                        value = delta.get(key)
                        if value and isinstance(value, str):
                            r.text.append(value)
                            content = True
                for call in _list(delta.get("tool_calls")):
                    if not isinstance(call, dict):
                        continue
                    content = True
                    slot = self._calls.setdefault((index, _index(call.get("index", 0))), ["", ""])
                    if isinstance(call.get("id"), str):
                        slot[0] = call["id"]
                    fn = call.get("function")
                    if isinstance(fn, dict):
                        if isinstance(fn.get("name"), str):
                            slot[1] += fn["name"]
                        if isinstance(fn.get("arguments"), str):
                            r.text.append(fn["arguments"])
                if content and r.first_content is None:
                    r.first_content = t
            if choice.get("finish_reason") and (index == 0 or r.stop is None):
                r.stop = safe(choice["finish_reason"]) or "other"

    def result(self) -> Result:
        r = self._r
        r.tool_calls = [ToolCall(i, n) for i, n in self._calls.values()]
        r.text.extend(n for _, n in self._calls.values())
        return r


def body(obj: Any) -> Result:
    """A non-streamed response body (or an error body)."""
    r = Result(complete=True)
    if not isinstance(obj, dict) or "error" in obj:
        r.error = error_of(obj)
        return r
    r.usage = _usage(obj.get("usage"))
    for choice in _list(obj.get("choices")):
        if not isinstance(choice, dict):
            continue
        msg = choice.get("message")
        if isinstance(msg, dict):
            for key in ("content", "reasoning_content", "reasoning", "refusal"):
                value = msg.get(key)
                if isinstance(value, str) and value:
                    r.text.append(value)
            for call in _list(msg.get("tool_calls")):
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    name = str(fn.get("name", ""))
                    r.tool_calls.append(ToolCall(str(call.get("id", "")), name))
                    r.text.append(name)
                    r.text.append(str(fn.get("arguments", "")))
        if choice.get("finish_reason") and (choice.get("index", 0) == 0 or r.stop is None):
            r.stop = safe(choice["finish_reason"]) or "other"
    return r
