"""Wire formats the recorder understands, one sans-I/O module per API.

Each module exposes `API` (the corpus api name), `ARRAY` (the body field holding the
conversation), `preamble(fields)` (the fields that linearize before it), `referenced_ids(items)`,
`ends_in_tool_result(items)`, a `Stream` accumulator fed SSE events, `parse_stream` (a bulk
parser for whole recorded streams, or None) and `body(obj)` for non-streamed responses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Protocol

from capture.sse import Event
from capture.wire import anthropic, openai_chat, openai_responses
from capture.wire.result import Result, ToolCall, Usage


class StreamParser(Protocol):
    def feed(self, event: Event, t: float) -> None: ...

    def result(self) -> Result: ...


class Format(Protocol):
    """What the recorder needs of a wire-format module."""

    API: str
    ARRAY: str
    Stream: Callable[[], StreamParser]
    # a whole plain stream at once (None: not plain, use `Stream`), where a format has one
    parse_stream: Callable[[bytes, Callable[[int], float]], Result | None] | None

    def preamble(self, fields: Mapping[str, Any]) -> dict[str, Any]: ...

    def referenced_ids(self, items: Sequence[Any]) -> set[str]: ...

    def ends_in_tool_result(self, items: Sequence[Any]) -> bool: ...

    def body(self, obj: Any) -> Result: ...


_MODULES: tuple[ModuleType, ...] = (openai_chat, openai_responses, anthropic)
FORMATS: dict[str, Format] = {m.API: m for m in _MODULES}


def api_for(method: str, path: str) -> str | None:
    """The API a request is a model call of, from its method and path (query ignored), or None.

    Suffix rules so that gateways' prefixes work (`/openai/v1/chat/completions`,
    `/backend-api/codex/responses`, Azure's `/openai/deployments/<d>/chat/completions`).
    """
    if method != "POST":
        return None
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return openai_chat.API
    if path.endswith("/responses"):
        return openai_responses.API
    if path.endswith("/messages") and "/threads/" not in path:  # not the Assistants API
        return anthropic.API
    return None


__all__ = ["FORMATS", "Format", "Result", "StreamParser", "ToolCall", "Usage", "api_for"]
