"""Anthropic Messages (`POST …/v1/messages`): request shape and response parsing.

Streams are named events: `message_start` (input usage), `content_block_start`/`_delta`/`_stop`
(text, tool_use with `input_json_delta`, thinking), `message_delta` (stop reason, final output
usage), `message_stop`, `ping`, and `error`. Usage is normalized to total input: input +
cache read + cache creation, with cache read as the cached part.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from capture.wire.result import (
    Result,
    ToolCall,
    Usage,
    array,
    count,
    error_label,
    error_of,
    loads,
    position,
    safe,
    string,
)
from corpus.wire import Event, apis

API = apis.ANTHROPIC
ARRAY = "messages"

# delta type -> the field holding generated text (None: content without countable text)
_CONTENT_DELTAS: dict[str, str | None] = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
    "citations_delta": None,
}


def preamble(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The body fields that linearize before the messages: tools, then system."""
    return {k: fields[k] for k in ("tools", "system") if fields.get(k)}


def _blocks(msg: Any) -> Sequence[Any]:
    content = msg.get("content") if isinstance(msg, dict) else None
    return content if isinstance(content, list) else ()


def referenced_ids(items: Sequence[Any]) -> set[str]:
    """tool_use ids that `items` (messages) mention: calls echoed back and their results."""
    out: set[str] = set()
    for msg in items:
        for block in _blocks(msg):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                out.add(block["id"])
            elif block.get("type") == "tool_result" and isinstance(block.get("tool_use_id"), str):
                out.add(block["tool_use_id"])
    return out


def ends_in_tool_result(items: Sequence[Any]) -> bool:
    if not items:
        return False
    return any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in _blocks(items[-1])
    )


def _merge(usage: Usage | None, raw: Any) -> Usage | None:
    """Fold one usage object into `usage`; later non-null values win (message_delta carries
    the final, cumulative counts)."""
    if not isinstance(raw, dict):
        return usage
    out = usage or Usage()
    base = count(raw.get("input_tokens"))
    read = count(raw.get("cache_read_input_tokens"))
    created = count(raw.get("cache_creation_input_tokens"))
    if base is not None:
        out.input = base + (read or 0) + (created or 0)
        out.cached = read if read is not None else (out.cached or 0)
    elif read is not None and out.input is not None:
        out.cached = read
    output = count(raw.get("output_tokens"))
    if output is not None:
        out.output = output
    return out


parse_stream = None  # streams go through `Stream`, event by event


class Stream:
    """Accumulates a Messages event stream; `feed` each event with its arrival time."""

    def __init__(self) -> None:
        self._r = Result()
        self._calls: dict[int, ToolCall] = {}

    def feed(self, event: Event, t: float) -> None:
        r = self._r
        msg = loads(event.data)
        if not isinstance(msg, dict):
            return
        kind = string(msg.get("type")) or event.event
        if kind == "error":
            err = msg.get("error")
            r.error = error_label(err.get("type") if isinstance(err, dict) else None)
        elif kind == "message_start":
            m = msg.get("message")
            if isinstance(m, dict):
                # message_start's output_tokens is a placeholder (1); only message_delta has
                # the real count, so a stream cut before it counts its text locally instead
                usage = m.get("usage")
                if isinstance(usage, dict):
                    usage = {k: v for k, v in usage.items() if k != "output_tokens"}
                r.usage = _merge(r.usage, usage)
        elif kind == "content_block_start":
            block = msg.get("content_block")
            if isinstance(block, dict):
                btype = block.get("type")
                if btype == "tool_use":
                    name = str(block.get("name", ""))
                    index = position(msg.get("index"), len(self._calls))
                    self._calls[index] = ToolCall(
                        str(block.get("id", "")), name
                    )
                    r.text.append(name)
                    self._content(t)
                elif btype == "text" and block.get("text"):
                    r.text.append(str(block["text"]))
                    self._content(t)
                elif btype == "redacted_thinking":
                    self._content(t)
        elif kind == "content_block_delta":
            delta = msg.get("delta")
            if isinstance(delta, dict) and string(delta.get("type")) in _CONTENT_DELTAS:
                field = _CONTENT_DELTAS[delta["type"]]
                value = delta.get(field) if field else None
                if isinstance(value, str) and value:
                    r.text.append(value)
                    self._content(t)
        elif kind == "message_delta":
            delta = msg.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                r.stop = safe(delta["stop_reason"]) or "other"
            r.usage = _merge(r.usage, msg.get("usage"))
        elif kind == "message_stop":
            r.complete = True

    def _content(self, t: float) -> None:
        if self._r.first_content is None:
            self._r.first_content = t

    def result(self) -> Result:
        self._r.tool_calls = list(self._calls.values())
        return self._r


def body(obj: Any) -> Result:
    """A non-streamed response body (or an error body)."""
    r = Result(complete=True)
    if not isinstance(obj, dict) or obj.get("type") == "error" or "error" in obj:
        r.error = error_of(obj)
        return r
    r.usage = _merge(None, obj.get("usage"))
    for block in array(obj.get("content")):
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "text":
            r.text.append(str(block.get("text", "")))
        elif btype == "thinking":
            r.text.append(str(block.get("thinking", "")))
        elif btype == "tool_use":
            name = str(block.get("name", ""))
            r.tool_calls.append(ToolCall(str(block.get("id", "")), name))
            r.text.append(name)
            r.text.append(_dump(block.get("input", {})))
    if obj.get("stop_reason"):
        r.stop = safe(obj["stop_reason"]) or "other"
    return r


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
