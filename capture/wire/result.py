"""What the recorder keeps of one model response, whatever the wire format.

Text is held only in memory, long enough to count tokens when the provider reports no usage;
error types and stop reasons are kept only when they look like a provider's fixed vocabulary
(`safe`), never free text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

_SAFE = re.compile(r"[a-z][a-z0-9_.\-]{0,47}")


def safe(label: Any) -> str | None:
    """`label` when it is a short lower-case identifier (`rate_limit_error`, `tool_use`), else
    None: an error code or stop reason that could carry user content is not recorded."""
    if isinstance(label, str) and _SAFE.fullmatch(label):
        return label
    return None


def loads(data: str | bytes) -> Any:
    """Parsed JSON, or None when `data` is not JSON."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None


def string(value: Any) -> str | None:
    """`value` if it is a string, else None (a field an odd upstream filled with anything)."""
    return value if isinstance(value, str) else None


def position(value: Any, default: int) -> int:
    """`value` if it is an integer index (not a bool), else `default`."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def array(value: Any) -> list[Any]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def count(value: Any) -> int | None:
    """A non-negative integer token count, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


@dataclass(slots=True)
class Usage:
    """Provider-reported token counts, normalized: `input` is the total prompt (Anthropic's
    input + cache read + cache creation), `cached` the part served from the provider's cache."""

    input: int | None = None
    cached: int | None = None
    output: int | None = None
    reasoning: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked the client to run. `id` stays in memory (it links the call
    to its result in the next request); only the name, pseudonymized, reaches the corpus."""

    id: str
    name: str


@dataclass(slots=True)
class Result:
    """One response as the recorder sees it."""

    text: list[str] = field(default_factory=list)  # generated text, reasoning, tool arguments
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    stop: str | None = None
    error: str | None = None  # "error" or "error:<provider type>" for a failed response
    first_content: float | None = None  # clock time of the first content event (streams)
    response_id: str | None = None  # OpenAI Responses: target of a later previous_response_id
    output_items: list[Any] | None = None  # OpenAI Responses: output, to rebuild chained context
    complete: bool = False  # the stream reached its terminal event

    def output_text(self) -> str:
        return "".join(self.text)


def error_label(kind: Any) -> str:
    """`error:<type>` for a provider error type that is safe to keep, else `error`."""
    label = safe(kind)
    return f"error:{label}" if label else "error"


def error_of(body: Any) -> str:
    """The error label of an error body (OpenAI `{"error": {...}}`, Anthropic
    `{"type": "error", "error": {...}}`, or anything else)."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return error_label(err.get("type") or err.get("code"))
        if isinstance(err, str):
            return error_label(err)
        if body.get("type") == "error":
            return error_label(body.get("code"))
    return "error"
