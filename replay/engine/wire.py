"""Plumbing shared by the API modules: app keys, body parsing, field checks, prompt tokens, SSE.

Field checks raise `InvalidRequest` naming the field, so each API renders its own 400 shape.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec
from aiohttp import web

from corpus import TokenCache
from corpus.wire import linearize
from replay.engine.errors import InvalidRequest
from replay.engine.scheduler import Engine, Generation

ENGINE = web.AppKey("engine", Engine)
TOKENS = web.AppKey("tokens", TokenCache)

ENGINE_HEADER = "x-agentload-engine"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    ENGINE_HEADER: "simulated",
}

encode = msgspec.json.Encoder().encode


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON response encoded with msgspec (headers are added by the app's prepare hook)."""
    return web.Response(body=encode(body), status=status, content_type="application/json")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or `InvalidRequest`."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"could not parse the request body as JSON ({exc}); send a JSON object"
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequest(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def opt_int(body: Mapping[str, Any], name: str, *, minimum: int = 0) -> int | None:
    """An optional integer field (null = absent) of at least `minimum`."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be an integer, got {_kind(value)}", param=name)
    if value < minimum:
        raise InvalidRequest(f"{name} must be at least {minimum}, got {value}", param=name)
    return value


def opt_bool(body: Mapping[str, Any], name: str) -> bool:
    """An optional boolean field (null = false)."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be a boolean, got {_kind(value)}", param=name)
    return value


def req_str(body: Mapping[str, Any], name: str) -> str:
    """A required string field."""
    value = body.get(name)
    if not isinstance(value, str):
        what = "missing" if value is None else f"a {_kind(value)}"
        raise InvalidRequest(f"{name} is required and must be a string, got {what}", param=name)
    return value


def req_messages(body: Mapping[str, Any], roles: frozenset[str]) -> list[dict[str, Any]]:
    """The required non-empty `messages` list of objects with a known role."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        what = "missing" if messages is None else f"{_kind(messages)} {messages!r:.40}"
        raise InvalidRequest(f"messages must be a non-empty list, got {what}", param="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InvalidRequest(
                f"messages[{i}] must be an object, got {_kind(msg)}", param=f"messages[{i}]"
            )
        role = msg.get("role")
        if not isinstance(role, str) or role not in roles:  # a list or dict isn't hashable
            raise InvalidRequest(
                f"messages[{i}].role must be one of {', '.join(sorted(roles))}, got {role!r}",
                param=f"messages[{i}].role",
            )
    return messages


def opt_tools(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The optional `tools` list (objects only)."""
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise InvalidRequest("tools must be a list of objects", param="tools")
    return tools


def argument_key(schema: Any) -> str:
    """First property name of a tool's JSON schema, else "input" (the generated argument)."""
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for key in props:
                if isinstance(key, str):
                    return key
    return "input"


def segments(api: str, body: Mapping[str, Any]) -> list[str]:
    """`corpus.wire.linearize.segments`, with a body it can't read reported as `InvalidRequest`."""
    try:
        return linearize.segments(api, body)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"could not read the request's messages: {exc}") from exc


def segment_ids(tokens: TokenCache, segs: Sequence[str]) -> list[int]:
    """Token ids of linearized segments, each tokenized once (content-cached)."""
    return list(itertools.chain.from_iterable(tokens.tokens(s) for s in segs))


def prompt_ids(tokens: TokenCache, api: str, body: Mapping[str, Any]) -> list[int]:
    """Prompt token ids exactly as capture counts them: linearized segments, content-cached."""
    return segment_ids(tokens, segments(api, body))


def check_ids(ids: Sequence[Any], param: str) -> list[int]:
    """Token-id prompt: non-negative ints."""
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise InvalidRequest(
                f"{param} token ids must be non-negative integers, found {t!r}", param=param
            )
    return list(ids)


async def prepare_sse(request: web.Request) -> web.StreamResponse:
    """Send the headers of a streaming response."""
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    return resp


async def merge(gens: Sequence[Generation]) -> AsyncIterator[tuple[int, int]]:
    """(index, new tokens) from several generations as they arrive; one generation is
    iterated directly (the common, cheap case)."""
    if len(gens) == 1:
        async for n in gens[0]:
            yield 0, n
        return
    pending: dict[asyncio.Future[int], int] = {}
    iters = [g.__aiter__() for g in gens]
    for i, it in enumerate(iters):
        pending[asyncio.ensure_future(it.__anext__())] = i
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                try:
                    n = fut.result()
                except StopAsyncIteration:
                    continue
                yield i, n
                pending[asyncio.ensure_future(iters[i].__anext__())] = i
    finally:
        for fut in pending:
            fut.cancel()
