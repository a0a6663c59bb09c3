"""OpenAI Responses (`POST …/responses`): request shape and response parsing.

Streams are typed events (`response.created`, `response.output_item.added`,
`response.output_text.delta`, `response.function_call_arguments.delta`, reasoning deltas, …)
ending in `response.completed`, `response.incomplete` or `response.failed`, which carry the
whole response with usage. `error` events report failures. A request may continue a stored
response with `previous_response_id`; the recorder rebuilds that context from the previous
turn's output items (`Result.output_items`).
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

API = apis.OPENAI_RESPONSES
ARRAY = "input"

# Output items that ask the client to run something, and the tool name each stands for.
CALLS = {
    "function_call": None,  # the item's own name
    "custom_tool_call": None,
    "local_shell_call": "local_shell",
    "shell_call": "shell",
    "apply_patch_call": "apply_patch",
    "computer_call": "computer",
}
RESULTS = frozenset(
    f"{kind}_output" for kind in CALLS
)  # function_call_output, custom_tool_call_output, …

_DELTAS = frozenset(
    (
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    )
)


def preamble(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The body fields that linearize before the input items: tools, then instructions."""
    return {k: fields[k] for k in ("tools", "instructions") if fields.get(k)}


def referenced_ids(items: Sequence[Any]) -> set[str]:
    """call_ids that `items` (input items) mention: calls echoed back and their outputs."""
    return {
        item["call_id"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("call_id"), str)
    }


def ends_in_tool_result(items: Sequence[Any]) -> bool:
    last = items[-1] if items else None
    return isinstance(last, dict) and string(last.get("type")) in RESULTS


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("input_tokens_details")
    out_details = raw.get("output_tokens_details")
    return Usage(
        input=count(raw.get("input_tokens")),
        cached=count(details.get("cached_tokens")) if isinstance(details, dict) else None,
        output=count(raw.get("output_tokens")),
        reasoning=(
            count(out_details.get("reasoning_tokens"))
            if isinstance(out_details, dict)
            else None
        ),
    )


def _call(item: Any) -> ToolCall | None:
    if not isinstance(item, dict) or string(item.get("type")) not in CALLS:
        return None
    name = CALLS[item["type"]] or str(item.get("name", ""))
    return ToolCall(str(item.get("call_id") or item.get("id") or ""), name)


def _finish(r: Result, response: Any) -> None:
    """Fold a whole response object (terminal event or non-streamed body) into `r`."""
    if not isinstance(response, dict):
        return
    if isinstance(response.get("id"), str):
        r.response_id = response["id"]
    usage = _usage(response.get("usage"))
    if usage is not None:
        r.usage = usage
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        r.stop = safe(reason) or "incomplete"
    elif status == "failed":
        err = response.get("error")
        r.error = error_label(err.get("code") if isinstance(err, dict) else None)
        r.stop = "failed"
    elif isinstance(status, str):
        r.stop = safe(status) or "other"
    output = response.get("output")
    if isinstance(output, list) and (output or r.output_items is None):
        r.output_items = output
        r.tool_calls = [c for c in map(_call, output) if c is not None]


parse_stream = None  # streams go through `Stream`, event by event


class Stream:
    """Accumulates a Responses event stream; `feed` each event with its arrival time."""

    def __init__(self) -> None:
        self._r = Result()
        self._items: dict[int, Any] = {}

    def feed(self, event: Event, t: float) -> None:
        r = self._r
        msg = loads(event.data)
        if not isinstance(msg, dict):
            return
        kind = string(msg.get("type")) or event.event
        if kind in _DELTAS:
            delta = msg.get("delta")
            if isinstance(delta, str) and delta:
                r.text.append(delta)
                if r.first_content is None:
                    r.first_content = t
        elif kind == "response.output_item.added":
            call = _call(msg.get("item"))
            if call is not None and r.first_content is None:
                r.first_content = t
        elif kind == "response.output_item.done":
            item = msg.get("item")
            index = position(msg.get("output_index"), len(self._items))
            self._items[index] = item
            call = _call(item)
            if call is not None:
                r.text.append(call.name)
        elif kind == "response.created":
            resp = msg.get("response")
            if isinstance(resp, dict) and isinstance(resp.get("id"), str):
                r.response_id = resp["id"]
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            _finish(r, msg.get("response"))
            r.complete = True
        elif kind == "error":
            r.error = error_label(msg.get("code") or msg.get("type"))

    def result(self) -> Result:
        r = self._r
        if r.output_items is None and self._items:  # no terminal event: what was completed
            r.output_items = [self._items[i] for i in sorted(self._items)]
            r.tool_calls = [c for c in map(_call, r.output_items) if c is not None]
        return r


def body(obj: Any) -> Result:
    """A non-streamed response body (or an error body)."""
    r = Result(complete=True)
    if not isinstance(obj, dict) or obj.get("object") not in (None, "response") or (
        obj.get("error") and obj.get("status") != "failed"
    ):
        r.error = error_of(obj)
        return r
    _finish(r, obj)
    for item in r.output_items or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in array(item.get("content")):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    r.text.append(part["text"])
        elif item.get("type") == "reasoning":
            for part in array(item.get("summary")):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    r.text.append(part["text"])
        call = _call(item)
        if call is not None:
            r.text.append(call.name)
            args = item.get("arguments", item.get("input", ""))
            r.text.append(args if isinstance(args, str) else json.dumps(args))
    return r
