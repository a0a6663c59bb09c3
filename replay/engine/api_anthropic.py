"""Anthropic Messages (/v1/messages, /v1/messages/count_tokens) on the simulated engine.

Usage splits the prompt like Anthropic: `input_tokens` (not from cache) + `cache_read_input_tokens`
(prefix-cache hits); the engine caches automatically, so `cache_creation_input_tokens` is 0.
Extensions (send with the SDK's `extra_body`): `ignore_eos`, `min_tokens`, as on the OpenAI side.
Tool use: with `tools` and tool_choice auto (or absent) the engine answers a user turn with one
`tool_use` block for the first tool and a `tool_result` turn with text; "any"/"tool" always call.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from replay.engine import output
from replay.engine.errors import EngineError, InvalidRequest, Overloaded
from replay.engine.eventstream import EventStreamResponse
from replay.engine.scheduler import Generation
from replay.engine.wire import (
    ENGINE,
    TOKENS,
    argument_key,
    encode,
    json_response,
    opt_bool,
    opt_int,
    opt_tools,
    prepare_sse,
    prompt_ids,
    read_json,
    req_messages,
    req_str,
)

ROLES = frozenset({"user", "assistant"})
_STOP = {"length": "max_tokens", "stop": "end_turn"}


class ToolPlan(msgspec.Struct, frozen=True):
    """The one `tool_use` block the engine will answer with."""

    name: str
    args: output.ToolArguments


def error_body(exc: EngineError) -> dict[str, Any]:
    """Anthropic's error object for `exc`."""
    if isinstance(exc, InvalidRequest):
        kind = "invalid_request_error"
    elif isinstance(exc, Overloaded):
        kind = "rate_limit_error"
    else:
        kind = "api_error"
    return {"type": "error", "error": {"type": kind, "message": str(exc)}}


def error_response(exc: EngineError) -> web.Response:
    """The HTTP error response Anthropic would send for `exc`."""
    resp = json_response(error_body(exc), status=exc.status)
    if isinstance(exc, Overloaded):
        resp.headers["Retry-After"] = "1"
    return resp


def _usage(gen: Generation) -> dict[str, int]:
    return {
        "input_tokens": gen.prompt_tokens - gen.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": gen.cached_tokens,
        "output_tokens": gen.generated,
    }


def _is_tool_result(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def _tool_plan(body: dict[str, Any], messages: list[dict[str, Any]]) -> ToolPlan | None:
    tools = [t for t in opt_tools(body) if isinstance(t.get("name"), str)]
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, dict):
        raise InvalidRequest("tool_choice must be an object", param="tool_choice")
    kind = (choice or {}).get("type", "auto")
    if kind not in ("auto", "any", "tool", "none"):
        raise InvalidRequest(
            f"tool_choice.type must be auto, any, tool or none, got {kind!r}", param="tool_choice"
        )
    if not tools or kind == "none":
        return None
    chosen = tools[0]
    if kind == "tool":
        name = (choice or {}).get("name")
        named = [t for t in tools if t["name"] == name]
        if not named:
            raise InvalidRequest(f"tool_choice names {name!r}, not in tools", param="tool_choice")
        chosen = named[0]
    last = messages[-1]
    if kind == "auto" and (last.get("role") != "user" or _is_tool_result(last)):
        return None
    return ToolPlan(chosen["name"], output.ToolArguments(argument_key(chosen.get("input_schema"))))


async def _parse(
    request: web.Request, model: str | None = None
) -> tuple[dict[str, Any], list[int]]:
    body = await read_json(request)
    if model is not None:  # Vertex AI, Bedrock: the model is in the path, not the body
        body["model"] = model
    req_str(body, "model")
    req_messages(body, ROLES)
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise InvalidRequest("system must be a string or a list of blocks", param="system")
    return body, prompt_ids(request.app[TOKENS], "anthropic-messages", body)


async def count_tokens(request: web.Request) -> web.Response:
    """POST /v1/messages/count_tokens."""
    _, ids = await _parse(request)
    return json_response({"input_tokens": len(ids)})


VERTEX = "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{target}"


async def vertex(request: web.Request) -> web.StreamResponse:
    """POST `VERTEX`: Vertex AI's Anthropic endpoint. `target` is `MODEL:rawPredict` or
    `MODEL:streamRawPredict` (the Messages API with the model taken out of the body), or
    `count-tokens:rawPredict`."""
    model, _, method = request.match_info["target"].rpartition(":")
    if model == "count-tokens" and method == "rawPredict":
        return await count_tokens(request)
    if not model or method not in ("rawPredict", "streamRawPredict"):
        raise web.HTTPNotFound(text=f"no method {method!r}: expected MODEL:rawPredict or "
                                    "MODEL:streamRawPredict")
    return await messages(request, model=model)


BEDROCK = "/model/{model:.+}/{action}"


async def bedrock(request: web.Request) -> web.StreamResponse:
    """POST `BEDROCK`: Amazon Bedrock's InvokeModel (`invoke`) and InvokeModelWithResponseStream
    (`invoke-with-response-stream`: the stream in AWS event-stream frames) for Claude: the
    Messages API with the model and the choice to stream in the path."""
    action = request.match_info["action"]
    if action not in ("invoke", "invoke-with-response-stream"):
        raise web.HTTPNotFound(text=f"no action {action!r}: expected invoke or "
                                    "invoke-with-response-stream")
    return await messages(request, model=request.match_info["model"],
                          bedrock_stream=action == "invoke-with-response-stream")


async def messages(
    request: web.Request, *, model: str | None = None, bedrock_stream: bool | None = None
) -> web.StreamResponse:
    """POST /v1/messages, and its cloud forms: `model` from the path (Vertex AI, Bedrock),
    `bedrock_stream` from Bedrock's path (the body says nothing about streaming there)."""
    body, ids = await _parse(request, model)
    model = body["model"]
    max_tokens = opt_int(body, "max_tokens", minimum=1)
    stream = opt_bool(body, "stream") if bedrock_stream is None else bedrock_stream
    tool = _tool_plan(body, body["messages"])
    gen = request.app[ENGINE].submit(
        ids,
        max_tokens=max_tokens,
        min_tokens=opt_int(body, "min_tokens") or 0,
        ignore_eos=opt_bool(body, "ignore_eos"),
        param="messages",
    )
    try:
        if stream:
            if bedrock_stream:
                resp: web.StreamResponse = EventStreamResponse()
                await resp.prepare(request)
            else:
                resp = await prepare_sse(request)
            return await _stream(resp, gen, model, tool)
        await gen.wait()
        if tool is None:
            block: dict[str, Any] = {"type": "text", "text": output.text(0, gen.generated)}
        else:
            args = msgspec.json.decode(tool.args.whole(gen.generated))
            block = {"type": "tool_use", "id": _tool_id(gen), "name": tool.name, "input": args}
        return json_response(_message(gen, model, tool, [block]))
    finally:
        gen.cancel()


def _tool_id(gen: Generation) -> str:
    return f"toolu_{gen.number:024x}"


def _message(
    gen: Generation, model: str, tool: ToolPlan | None, content: list[dict[str, Any]]
) -> dict[str, Any]:
    done = bool(content)
    return {
        "id": f"msg_{gen.number:024x}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": (("tool_use" if tool else _STOP[gen.finish_reason]) if done else None),
        "stop_sequence": None,
        "usage": _usage(gen),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + encode(data) + b"\n\n"


async def _stream(
    resp: web.StreamResponse, gen: Generation, model: str, tool: ToolPlan | None
) -> web.StreamResponse:
    if tool is None:
        head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        head += b'"delta":{"type":"text_delta","text":'
        block: dict[str, Any] = {"type": "text", "text": ""}
    else:
        head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        head += b'"delta":{"type":"input_json_delta","partial_json":'
        block = {"type": "tool_use", "id": _tool_id(gen), "name": tool.name, "input": {}}
    tail = b"}}\n\n"
    pos = 0
    try:
        async for n in gen:
            piece = output.text(pos, n)
            out = b""
            if pos == 0:
                start = _message(gen, model, tool, [])
                start["usage"]["output_tokens"] = 1
                out += _event("message_start", {"type": "message_start", "message": start})
                out += _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": block},
                )
                out += _event("ping", {"type": "ping"})
                if tool is not None:
                    piece = tool.args.open() + piece
            pos += n
            await resp.write(out + head + encode(piece) + tail)
    except ConnectionResetError:
        return resp
    except EngineError as exc:
        await resp.write(_event("error", error_body(exc)))
        await resp.write_eof()
        return resp
    last = b""
    if tool is not None:
        last += head + encode(tool.args.close()) + tail
    last += _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    stop = "tool_use" if tool else _STOP[gen.finish_reason]
    last += _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": _usage(gen),
        },
    )
    last += _event("message_stop", {"type": "message_stop"})
    await resp.write(last)
    await resp.write_eof()
    return resp
