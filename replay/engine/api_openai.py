"""OpenAI Chat Completions on the simulated engine: request checks, JSON and SSE responses.

Extensions accepted like vLLM: `ignore_eos` (generate exactly max_tokens) and `min_tokens`.
Tool calls: with `tools` and tool_choice "auto" (or absent) the engine answers the user with one
call to the first function tool, and answers a tool result with text; "required" or a named
function always calls; "none" never does.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from replay.engine import output
from replay.engine.errors import EngineError, InvalidRequest, Overloaded
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

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
DONE = b"data: [DONE]\n\n"


class ToolPlan(msgspec.Struct, frozen=True):
    """The one tool call the engine will answer with."""

    name: str
    args: output.ToolArguments


def error_body(exc: EngineError) -> dict[str, Any]:
    """OpenAI's error object for `exc`."""
    if isinstance(exc, InvalidRequest):
        kind, param, code = "invalid_request_error", exc.param, exc.code
    elif isinstance(exc, Overloaded):
        kind, param, code = "rate_limit_error", None, "rate_limit_exceeded"
    else:
        kind, param, code = "server_error", None, None
    return {"error": {"message": str(exc), "type": kind, "param": param, "code": code}}


def error_response(exc: EngineError) -> web.Response:
    """The HTTP error response OpenAI would send for `exc`."""
    resp = json_response(error_body(exc), status=exc.status)
    if isinstance(exc, Overloaded):
        resp.headers["Retry-After"] = "1"
    return resp


def usage(gens: list[Generation], completion: int | None = None) -> dict[str, Any]:
    """OpenAI usage over `gens` (several for batched /v1/completions prompts)."""
    prompt = sum(g.prompt_tokens for g in gens)
    done = sum(g.generated for g in gens) if completion is None else completion
    return {
        "prompt_tokens": prompt,
        "completion_tokens": done,
        "total_tokens": prompt + done,
        "prompt_tokens_details": {"cached_tokens": sum(g.cached_tokens for g in gens)},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def stream_usage(body: dict[str, Any]) -> bool:
    """Whether `stream_options.include_usage` asks for a final usage chunk."""
    opts = body.get("stream_options")
    if opts is None:
        return False
    if not isinstance(opts, dict):
        raise InvalidRequest("stream_options must be an object", param="stream_options")
    return opt_bool(opts, "include_usage")


def _tool_plan(body: dict[str, Any], messages: list[dict[str, Any]]) -> ToolPlan | None:
    functions = [
        t["function"]
        for t in opt_tools(body)
        if t.get("type", "function") == "function"
        and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
    ]
    choice = body.get("tool_choice")
    if not functions or choice == "none":
        return None
    chosen = functions[0]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        named = [f for f in functions if f["name"] == name]
        if not named:
            raise InvalidRequest(f"tool_choice names {name!r}, not in tools", param="tool_choice")
        chosen = named[0]
    elif choice not in (None, "auto", "required") and not isinstance(choice, dict):
        raise InvalidRequest(
            f"tool_choice must be none, auto, required or a function, got {choice!r}",
            param="tool_choice",
        )
    forced = choice == "required" or (isinstance(choice, dict) and "function" in choice)
    if not forced and messages[-1].get("role") != "user":
        return None
    return ToolPlan(chosen["name"], output.ToolArguments(argument_key(chosen.get("parameters"))))


def _call_id(gen: Generation) -> str:
    return f"call_{gen.number:024x}"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions."""
    body = await read_json(request)
    model = req_str(body, "model")
    messages = req_messages(body, ROLES)
    max_tokens = opt_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = opt_int(body, "max_tokens", minimum=1)
    if opt_int(body, "n", minimum=1) not in (None, 1):
        raise InvalidRequest("the simulated engine supports only n=1", param="n")
    stream = opt_bool(body, "stream")
    include_usage = stream_usage(body)
    tool = _tool_plan(body, messages)
    ids = prompt_ids(request.app[TOKENS], "openai-chat", body)
    gen = request.app[ENGINE].submit(
        ids,
        max_tokens=max_tokens,
        min_tokens=opt_int(body, "min_tokens") or 0,
        ignore_eos=opt_bool(body, "ignore_eos"),
        param="messages",
    )
    try:
        if stream:
            return await _stream(request, gen, model, tool, include_usage)
        await gen.wait()
        return json_response(_completion(gen, model, tool))
    finally:
        gen.cancel()


def _finish(gen: Generation, tool: ToolPlan | None) -> str:
    return "tool_calls" if tool is not None else gen.finish_reason


def _completion(gen: Generation, model: str, tool: ToolPlan | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if tool is None:
        message["content"] = output.text(0, gen.generated)
    else:
        message["tool_calls"] = [
            {
                "id": _call_id(gen),
                "type": "function",
                "function": {"name": tool.name, "arguments": tool.args.whole(gen.generated)},
            }
        ]
    return {
        "id": f"chatcmpl-{gen.number:024x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "agentload-simulated",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(gen, tool)}
        ],
        "usage": usage([gen]),
    }


async def _stream(
    request: web.Request,
    gen: Generation,
    model: str,
    tool: ToolPlan | None,
    include_usage: bool,
) -> web.StreamResponse:
    resp = await prepare_sse(request)
    base: dict[str, Any] = {"id": f"chatcmpl-{gen.number:024x}", "object": "chat.completion.chunk"}
    base |= {"created": int(time.time()), "model": model}
    if include_usage:
        base["usage"] = None
    # Every chunk is head + delta + tail; only the delta changes per token.
    frame = encode(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": None}]})
    head, tail = frame.split(b'"delta":{}', 1)
    head, tail = b"data: " + head + b'"delta":', tail + b"\n\n"
    pos = 0
    try:
        async for n in gen:
            piece = output.text(pos, n)
            if tool is None:
                delta = b'{"content":' + encode(piece) + b"}"
                if pos == 0:
                    delta = b'{"role":"assistant",' + delta[1:]
            elif pos == 0:
                call: dict[str, Any] = {"index": 0, "id": _call_id(gen), "type": "function"}
                call["function"] = {"name": tool.name, "arguments": tool.args.open() + piece}
                delta = encode({"role": "assistant", "content": None, "tool_calls": [call]})
            else:
                delta = b'{"tool_calls":[{"index":0,"function":{"arguments":' + encode(piece)
                delta += b"}}]}"
            pos += n
            await resp.write(head + delta + tail)
    except ConnectionResetError:
        return resp
    except EngineError as exc:
        await resp.write(b"data: " + encode(error_body(exc)) + b"\n\n" + DONE)
        await resp.write_eof()
        return resp
    last = b""
    if tool is not None:
        args = tool.args.close()
        last += head + b'{"tool_calls":[{"index":0,"function":{"arguments":'
        last += encode(args) + b"}}]}" + tail
    end = base | {"choices": [{"index": 0, "delta": {}, "finish_reason": _finish(gen, tool)}]}
    last += b"data: " + encode(end) + b"\n\n"
    if include_usage:
        last += b"data: " + encode(base | {"choices": [], "usage": usage([gen])}) + b"\n\n"
    await resp.write(last + DONE)
    await resp.write_eof()
    return resp
