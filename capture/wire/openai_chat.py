"""OpenAI Chat Completions (`POST …/chat/completions`): request shape and response parsing.

Streams are `data: {chat.completion.chunk}` events ending in `data: [DONE]`; usage arrives in a
last chunk with empty `choices` when the client asked for it (`stream_options.include_usage`).
Reasoning deltas use the de-facto `reasoning_content` (DeepSeek, vLLM) or `reasoning`
(OpenRouter) fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capture.sse import Event
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
from corpus.linearize import API_OPENAI_CHAT

API = API_OPENAI_CHAT
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
        for call in msg.get("tool_calls") or ():
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


class Stream:
    """Accumulates a chat.completion.chunk stream; `feed` each event with its arrival time."""

    def __init__(self) -> None:
        self._r = Result()
        self._calls: dict[tuple[int, int], list[str]] = {}  # (choice, index) -> [id, name]

    def feed(self, event: Event, t: float) -> None:
        r = self._r
        data = event.data
        if data == "[DONE]":
            r.complete = True
            return
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
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = False
                if delta:
                    for key in _TEXT_KEYS:
                        value = delta.get(key)
                        if value and isinstance(value, str):
                            r.text.append(value)
                            content = True
                for call in delta.get("tool_calls") or ():
                    if not isinstance(call, dict):
                        continue
                    content = True
                    slot = self._calls.setdefault((index, call.get("index", 0)), ["", ""])
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
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        msg = choice.get("message")
        if isinstance(msg, dict):
            for key in ("content", "reasoning_content", "reasoning", "refusal"):
                value = msg.get(key)
                if isinstance(value, str) and value:
                    r.text.append(value)
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    name = str(fn.get("name", ""))
                    r.tool_calls.append(ToolCall(str(call.get("id", "")), name))
                    r.text.append(name)
                    r.text.append(str(fn.get("arguments", "")))
        if choice.get("finish_reason") and (choice.get("index", 0) == 0 or r.stop is None):
            r.stop = safe(choice["finish_reason"]) or "other"
    return r
