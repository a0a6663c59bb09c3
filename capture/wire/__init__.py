"""Wire formats the recorder understands, one sans-I/O module per API.

Each module exposes `API` (the corpus api name), `ARRAY` (the body field holding the
conversation), `preamble(fields)` (the fields that linearize before it), `referenced_ids(items)`,
`ends_in_tool_result(items)`, a `Stream` accumulator fed SSE events, `parse_stream` (a bulk
parser for whole recorded streams, or None) and `body(obj)` for non-streamed responses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import unquote

from capture.wire import anthropic, openai_chat, openai_responses
from capture.wire.result import Result, ToolCall, Usage
from corpus.wire import Event, apis


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


# Vertex AI's Anthropic endpoint: the Messages API, model in the path, `:streamRawPredict`
# for streams (`…/models/count-tokens:rawPredict` counts tokens: not a model call)
_VERTEX = re.compile(r"/publishers/anthropic/models/([^/]+):(?:rawPredict|streamRawPredict)$")
# Amazon Bedrock's InvokeModel for Claude: the Messages API, model in the path, the stream in
# AWS event-stream frames (`corpus.wire.eventstream`). Other model families there take other
# bodies: only ids naming Anthropic or Claude, and ARNs (inference profiles, which name no
# family; Claude Code accepts them as its model) count as model calls. Converse is not read.
_BEDROCK = re.compile(r"^(?:.*/)?model/([^/]+)/(?:invoke|invoke-with-response-stream)$")


def api_for(method: str, path: str) -> str | None:
    """The API a request is a model call of, from its method and path (query ignored), or None.

    Suffix rules so that gateways' prefixes work (`/openai/v1/chat/completions`,
    `/backend-api/codex/responses`, Azure's `/openai/deployments/<d>/chat/completions`,
    Vertex AI's `…/publishers/anthropic/models/<model>:streamRawPredict`, Bedrock's
    `/model/<model>/invoke-with-response-stream`).
    """
    if method != "POST":
        return None
    path = path.split("?", 1)[0].rstrip("/")
    if _cloud_model(path) is not None:
        return anthropic.API
    api = apis.for_path(path)
    if api == anthropic.API and "/threads/" in path:  # not the Assistants API
        return None
    return api if api in FORMATS else None  # legacy completions: not recorded


def _cloud_model(path: str) -> str | None:
    """The model id of a Claude call on Vertex AI or Bedrock (`path` without its query), as
    the path names it, else None."""
    found = _VERTEX.search(path)
    if found is not None:
        return None if found[1] == "count-tokens" else unquote(found[1])
    found = _BEDROCK.match(path)
    if found is not None:
        model = unquote(found[1])
        low = model.lower()
        if "anthropic" in low or "claude" in low or low.startswith("arn:"):
            return model
    return None


def model_for(path: str) -> str | None:
    """The model a call names in its path instead of its body (Vertex AI, Bedrock), else
    None. A Bedrock ARN names an AWS account and resource, not a model: it gives ""."""
    model = _cloud_model(path.split("?", 1)[0].rstrip("/"))
    if model is None:
        return None
    return "" if model.lower().startswith("arn:") else model


__all__ = [
    "FORMATS", "Format", "Result", "StreamParser", "ToolCall", "Usage", "api_for", "model_for",
]
