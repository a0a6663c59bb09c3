"""Turn an LLM API request body into the ordered text segments the provider's prefix cache sees.

Order is the providers' cache order: tools, then system, then messages. One segment per tool,
system block and message, so a caller can tokenize each segment once and reuse it on every
later request that repeats it. The rendering is ours (role markers and JSON for tool calls); it
is deterministic and shared by capture, the importers and the simulated engine, so the counts
they report agree with each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from corpus.normalize import normalize
from corpus.wire import apis


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _items(value: Any) -> list[Any]:
    """A field that should hold a list: None gives none, anything else that isn't a list is
    one element (bodies the provider would reject still linearize, deterministically)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _parts_text(content: Any) -> str:
    """Text of a message `content`: a string, or a list of typed parts (any provider)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        content = [content]
    if not isinstance(content, Sequence):
        return str(content)
    out: list[str] = []
    for part in content:
        if isinstance(part, str):
            out.append(part)
            continue
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type", "text")
        if kind in ("text", "input_text", "output_text", "summary_text"):
            out.append(str(part.get("text", "")))
        elif kind in ("thinking",):
            out.append(str(part.get("thinking", "")))
        elif kind == "redacted_thinking":
            out.append(str(part.get("data", "")))
        elif kind == "tool_use":
            out.append(f"<call {part.get('name', '')}>{_dump(part.get('input', {}))}")
        elif kind == "tool_result":
            out.append(f"<result>{_parts_text(part.get('content'))}")
        elif kind in ("image", "image_url", "input_image", "document", "input_file", "file"):
            out.append(f"<{kind}>")
        elif kind == "refusal":
            out.append(str(part.get("refusal", "")))
        else:
            out.append(_dump(part))
    return "\n".join(out)


def _openai_message(msg: Any) -> str:
    if not isinstance(msg, Mapping):
        return _dump(msg)
    role = msg.get("role", "user")
    text = f"<|{role}|>{_parts_text(msg.get('content'))}"
    for call in _items(msg.get("tool_calls")):
        fn = call.get("function", {}) if isinstance(call, Mapping) else {}
        if not isinstance(fn, Mapping):
            fn = {}
        text += f"<call {fn.get('name', '')}>{fn.get('arguments', '')}"
    fc = msg.get("function_call")
    if fc and isinstance(fc, Mapping):
        text += f"<call {fc.get('name', '')}>{fc.get('arguments', '')}"
    return text


def _tools(tools: Any) -> list[str]:
    return [f"<|tool|>{_dump(t)}" for t in _items(tools)]


def openai_chat(body: Mapping[str, Any]) -> list[str]:
    """Segments of an OpenAI Chat Completions request."""
    return _tools(body.get("tools")) + [_openai_message(m) for m in _items(body.get("messages"))]


def anthropic_messages(body: Mapping[str, Any]) -> list[str]:
    """Segments of an Anthropic Messages request (tools, then system, then messages)."""
    segs = _tools(body.get("tools"))
    system = body.get("system")
    if isinstance(system, str):
        segs.append(f"<|system|>{system}")
    elif isinstance(system, Sequence):
        segs.extend(f"<|system|>{_parts_text([block])}" for block in system)
    elif system:
        segs.append(f"<|system|>{_dump(system)}")
    for msg in _items(body.get("messages")):
        if isinstance(msg, Mapping):
            segs.append(f"<|{msg.get('role', 'user')}|>{_parts_text(msg.get('content'))}")
        else:
            segs.append(_dump(msg))
    return segs


def _responses_item(item: Any) -> str:
    if isinstance(item, str):
        return f"<|user|>{item}"
    if not isinstance(item, Mapping):
        return _dump(item)
    kind = item.get("type", "message")
    if kind == "message":
        return f"<|{item.get('role', 'user')}|>{_parts_text(item.get('content'))}"
    if kind in ("function_call", "custom_tool_call"):
        return f"<call {item.get('name', '')}>{item.get('arguments', item.get('input', ''))}"
    if kind in ("function_call_output", "custom_tool_call_output"):
        return f"<result>{_parts_text(item.get('output'))}"
    if kind == "reasoning":
        return f"<|reasoning|>{_parts_text(item.get('summary'))}{item.get('encrypted_content', '')}"
    return _dump(item)


def openai_responses(body: Mapping[str, Any]) -> list[str]:
    """Segments of an OpenAI Responses request (tools, instructions, input items)."""
    segs = _tools(body.get("tools"))
    if body.get("instructions"):
        segs.append(f"<|system|>{body['instructions']}")
    items = body.get("input")
    if isinstance(items, str):
        segs.append(f"<|user|>{items}")
    else:
        segs.extend(_responses_item(item) for item in _items(items))
    return segs


def openai_completions(body: Mapping[str, Any]) -> list[str]:
    """Segments of a legacy Completions request with a text prompt (token-id prompts: none).

    A list of strings is a *batch* of independent prompts (OpenAI and the simulated engine
    answer one choice per prompt). This returns one segment per prompt, in order, so the token
    total over the segments is the batch's total prompt tokens; but the prompts do not share a
    prefix cache. Use `prompts()` to get each prompt's own segments.
    """
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    return []


_BY_API = {
    apis.OPENAI_CHAT: openai_chat,
    apis.ANTHROPIC: anthropic_messages,
    apis.OPENAI_RESPONSES: openai_responses,
    apis.OPENAI_COMPLETIONS: openai_completions,
}


def _check(api: str) -> None:
    if api not in _BY_API:
        raise ValueError(f"unknown api {api!r}; expected one of {', '.join(apis.NAMES)}")


def segments(api: str, body: Mapping[str, Any]) -> list[str]:
    """Normalized segments of `body` for `api` (one of `apis.NAMES`), in the provider's cache order.

    For a batched Completions request (`prompt` a list of strings) these are all the prompts'
    segments in order; see `prompts()` for one list per prompt.
    """
    _check(api)
    return [normalize(s) for s in _BY_API[api](body)]


def prompts(api: str, body: Mapping[str, Any]) -> list[list[str]]:
    """Normalized segments of each prompt `body` sends: one list per prompt.

    Only a Completions request can carry several prompts (`prompt` as a list of strings, a
    batch answered with one choice per prompt); every other request is one prompt, so this is
    `[segments(api, body)]`. A Completions request with token-id prompts has no text to
    linearize and gives `[]`. Concatenating the lists gives `segments(api, body)`.
    """
    _check(api)
    if api == apis.OPENAI_COMPLETIONS:
        return [[normalize(text)] for text in openai_completions(body)]
    return [segments(api, body)]
