"""OpenAI Responses (/v1/responses) on the simulated engine: request checks, JSON and SSE.

`input` is a string (one user message) or a list of items: messages (`role` user, assistant,
system or developer; `type` may be left out), `function_call`, `function_call_output`,
`reasoning`; other item types are accepted and counted as `corpus.wire.linearize` renders them.
Prompt = tools, `instructions`, then the conversation, exactly as capture counts it.

Output is one item: a `message` with one `output_text` part, or (with function tools and
tool_choice auto or absent, when the last input item is a user message) one `function_call` to
the first function tool; "required", a named function or `allowed_tools` in required mode
always call, "none" never does, and a turn ending in `function_call_output` gets text.
Non-function tools (hosted ones) are counted in the prompt but never called; a tool_choice that
names one gets text. A message cut by the length cap makes the response `incomplete` with
`incomplete_details.reason = "max_output_tokens"` (a stream then ends in
`response.incomplete`, as OpenAI's does); a function call is always `completed`.

`previous_response_id`: the server keeps the conversation (linearized segments, not bodies) of
its most recent responses in a bounded LRU (`ResponseStore`) and puts it between the new
request's instructions and its input, as capture rebuilds such a chain. An id it does not hold
(evicted, from another engine run, or created with `store: false`) is not an error: the request
is counted on its own input only. Responses can't be read back (no GET /v1/responses/{id});
`background: true` is refused with 400 and `conversation` is ignored.

Usage: `input_tokens` includes `input_tokens_details.cached_tokens` (prefix-cache hits);
`cache_write_tokens` and `output_tokens_details.reasoning_tokens` are 0. Extensions (SDK
`extra_body`): `ignore_eos`, `min_tokens`, as on the other APIs.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec
from aiohttp import WSMsgType, web

from corpus.wire import apis
from replay.engine import output
from replay.engine.errors import EngineError, InvalidRequest
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
    read_json,
    req_str,
    segment_ids,
    segments,
)

API = apis.OPENAI_RESPONSES
ROLES = frozenset({"user", "assistant", "system", "developer"})
_CHOICES = frozenset({"none", "auto", "required"})


class ResponseStore:
    """Conversations of the most recent responses by id, for `previous_response_id`.

    Each entry is the linearized conversation (input items of the whole chain, then the
    response's own output item) without tools or instructions, which are not carried over.
    Bounded by `max_responses` entries and `max_segments` segment references in all; the
    segment strings themselves are shared between the entries of one chain.
    """

    def __init__(self, max_responses: int = 4096, max_segments: int = 2_000_000) -> None:
        self.max_responses = max_responses
        self.max_segments = max_segments
        self.salt = os.urandom(4).hex()
        """Random per server, in every id, so ids from another engine run never match."""
        self._map: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._held = 0

    def __len__(self) -> int:
        return len(self._map)

    def get(self, response_id: str) -> tuple[str, ...] | None:
        """The stored conversation of `response_id`, or None (never stored, or evicted)."""
        found = self._map.get(response_id)
        if found is not None:
            self._map.move_to_end(response_id)
        return found

    def put(self, response_id: str, conversation: tuple[str, ...]) -> None:
        old = self._map.pop(response_id, None)
        if old is not None:
            self._held -= len(old)
        self._map[response_id] = conversation
        self._held += len(conversation)
        while len(self._map) > self.max_responses or (
            self._held > self.max_segments and len(self._map) > 1
        ):
            _, gone = self._map.popitem(last=False)
            self._held -= len(gone)


STORE = web.AppKey("responses", ResponseStore)


class ToolPlan(msgspec.Struct, frozen=True):
    """The one function call the engine will answer with."""

    name: str
    args: output.ToolArguments


class Request(msgspec.Struct, kw_only=True):
    """A checked /v1/responses request."""

    body: dict[str, Any]
    model: str
    stream: bool
    store: bool
    created: int
    previous: str | None
    tool: ToolPlan | None
    conversation: tuple[str, ...]
    """The stored chain (if any) and this request's input items, linearized."""
    ids: list[int]


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _input(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The input as items (a string is one user message); checks each item's fields."""
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise InvalidRequest(
            f"input must be a string or a list of items, got {_kind(value)}", param="input"
        )
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object, got {_kind(item)}", param=where)
        kind = item.get("type", "message" if "role" in item else None)
        if not isinstance(kind, str):
            raise InvalidRequest(f"{where}.type is required, got {kind!r}", param=f"{where}.type")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise InvalidRequest(
                    f"{where}.role must be one of {', '.join(sorted(ROLES))}, got {role!r}",
                    param=f"{where}.role",
                )
            _need(item, where, "content", str | list)
        elif kind == "function_call":
            for name in ("call_id", "name", "arguments"):
                _need(item, where, name, str)
        elif kind == "function_call_output":
            _need(item, where, "call_id", str)
            _need(item, where, "output", str | list)
    return value


def _need(item: Mapping[str, Any], where: str, name: str, kind: Any) -> None:
    value = item.get(name)
    if not isinstance(value, kind):
        want = "a string" if kind is str else "a string or a list of parts"
        raise InvalidRequest(
            f"{where}.{name} must be {want}, got {_kind(value)}", param=f"{where}.{name}"
        )


def _opt_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string, got {_kind(value)}", param=name)
    return value


def _is_user_turn(items: list[dict[str, Any]]) -> bool:
    if not items:
        return False
    last = items[-1]
    return last.get("type", "message") == "message" and last.get("role") == "user"


def _tool_plan(body: Mapping[str, Any], items: list[dict[str, Any]]) -> ToolPlan | None:
    functions: list[dict[str, Any]] = []
    for i, tool in enumerate(opt_tools(body)):
        kind = tool.get("type")
        if not isinstance(kind, str):
            raise InvalidRequest(f"tools[{i}].type is required", param=f"tools[{i}].type")
        if kind == "function":
            if not isinstance(tool.get("name"), str):
                raise InvalidRequest(
                    f"tools[{i}].name is required for a function tool (Responses tools are "
                    'flat: {"type": "function", "name": ..., "parameters": ...})',
                    param=f"tools[{i}].name",
                )
            functions.append(tool)
    choice = body.get("tool_choice")
    forced = choice == "required"
    if isinstance(choice, str):
        if choice not in _CHOICES:
            raise InvalidRequest(
                f"tool_choice must be none, auto, required or an object, got {choice!r}",
                param="tool_choice",
            )
    elif isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            named = [f for f in functions if f["name"] == choice.get("name")]
            if not named:
                raise InvalidRequest(
                    f"tool_choice names function {choice.get('name')!r}, not in tools",
                    param="tool_choice",
                )
            functions, forced = named, True
        elif kind == "allowed_tools":
            mode = choice.get("mode", "auto")
            allowed = choice.get("tools")
            if mode not in ("auto", "required") or not isinstance(allowed, list):
                raise InvalidRequest(
                    "tool_choice allowed_tools needs mode auto or required and a tools list",
                    param="tool_choice",
                )
            names = [t.get("name") for t in allowed if isinstance(t, dict)]
            functions = [f for f in functions if f["name"] in names]
            forced = mode == "required"
        else:  # a hosted or custom tool: the engine only ever calls function tools
            return None
    elif choice is not None:
        raise InvalidRequest(
            f"tool_choice must be a string or an object, got {_kind(choice)}", param="tool_choice"
        )
    if not functions or choice == "none" or not (forced or _is_user_turn(items)):
        return None
    chosen = functions[0]
    return ToolPlan(chosen["name"], output.ToolArguments(argument_key(chosen.get("parameters"))))


async def _parse(request: web.Request) -> Request:
    return _check(request.app, await read_json(request))


def _check(
    app: web.Application, body: dict[str, Any], local: dict[str, tuple[str, ...]] | None = None
) -> Request:
    model = req_str(body, "model")
    items = _input(body)
    instructions = _opt_str(body, "instructions")
    previous = _opt_str(body, "previous_response_id")
    stream = opt_bool(body, "stream")
    store = body.get("store")
    if store is not None and not isinstance(store, bool):
        raise InvalidRequest(f"store must be a boolean, got {_kind(store)}", param="store")
    if opt_bool(body, "background"):
        raise InvalidRequest(
            "background responses are not supported by the simulated engine", param="background"
        )
    tool = _tool_plan(body, items)
    head = segments(API, {"tools": body.get("tools"), "instructions": instructions})
    own = segments(API, {"input": body.get("input")})
    chain = None
    if previous is not None:  # a socket's own last response first (kept even with store false)
        chain = (local or {}).get(previous) or app[STORE].get(previous)
    conversation = (*(chain or ()), *own)
    return Request(
        body=body,
        model=model,
        stream=stream,
        store=store is not False,
        created=int(time.time()),
        previous=previous,
        tool=tool,
        conversation=conversation,
        ids=segment_ids(app[TOKENS], [*head, *conversation]),
    )


async def responses(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses."""
    req = await _parse(request)
    body = req.body
    gen = request.app[ENGINE].submit(
        req.ids,
        max_tokens=opt_int(body, "max_output_tokens", minimum=1),
        min_tokens=opt_int(body, "min_tokens") or 0,
        ignore_eos=opt_bool(body, "ignore_eos"),
        param="input",
    )
    names = _Names(request.app[STORE].salt, gen.number)
    try:
        if req.stream:
            return await _stream(request, req, gen, names)
        await gen.wait()
        item = _item(req, gen, names, done=True)
        _remember(request, req, names, item)
        return json_response(_response(req, gen, names, [item], final=True))
    finally:
        gen.cancel()


class _Names:
    """Ids of one response and its output item (random per server, sequential per request)."""

    __slots__ = ("call", "fc", "msg", "resp")

    def __init__(self, salt: str, number: int) -> None:
        suffix = f"{salt}{number:024x}"
        self.resp = "resp_" + suffix
        self.msg = "msg_" + suffix
        self.fc = "fc_" + suffix
        self.call = "call_" + suffix


def _truncated(req: Request, gen: Generation) -> bool:
    return req.tool is None and gen.finish_reason == "length"


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _item(req: Request, gen: Generation, names: _Names, *, done: bool) -> dict[str, Any]:
    """The output item: in progress and empty (`done=False`) or complete."""
    status = "in_progress"
    if done:
        status = "incomplete" if _truncated(req, gen) else "completed"
    if req.tool is None:
        content = [_text_part(output.text(0, gen.generated))] if done else []
        return {
            "id": names.msg,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }
    return {
        "id": names.fc,
        "type": "function_call",
        "status": status,
        "arguments": req.tool.args.whole(gen.generated) if done else "",
        "call_id": names.call,
        "name": req.tool.name,
    }


def _usage(gen: Generation) -> dict[str, Any]:
    return {
        "input_tokens": gen.prompt_tokens,
        "input_tokens_details": {"cached_tokens": gen.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": gen.generated,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": gen.prompt_tokens + gen.generated,
    }


def _echo(body: Mapping[str, Any], name: str, kind: Any, default: Any) -> Any:
    value = body.get(name)
    return value if isinstance(value, kind) and not isinstance(value, bool) else default


def _response(
    req: Request,
    gen: Generation,
    names: _Names,
    out: list[dict[str, Any]],
    *,
    final: bool,
    error: EngineError | None = None,
) -> dict[str, Any]:
    """The response object: in progress (`final=False`), finished, or failed (`error`)."""
    body = req.body
    status, incomplete, usage = "in_progress", None, None
    if error is not None:
        status = "failed"
    elif final:
        truncated = _truncated(req, gen)
        status = "incomplete" if truncated else "completed"
        incomplete = {"reason": "max_output_tokens"} if truncated else None
        usage = _usage(gen)
    parallel = body.get("parallel_tool_calls")
    return {
        "id": names.resp,
        "object": "response",
        "created_at": req.created,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None if error is None else {"code": "server_error", "message": str(error)},
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": req.model,
        "output": out,
        "parallel_tool_calls": parallel if isinstance(parallel, bool) else True,
        "previous_response_id": req.previous,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": req.store,
        "temperature": _echo(body, "temperature", int | float, 1.0),
        "text": _echo(body, "text", dict, {"format": {"type": "text"}}),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": _echo(body, "top_p", int | float, 1.0),
        "truncation": _echo(body, "truncation", str, "disabled"),
        "usage": usage,
        "user": _echo(body, "user", str, None),
        "metadata": _echo(body, "metadata", dict, {}),
    }


def _remember(request: web.Request, req: Request, names: _Names, item: dict[str, Any]) -> None:
    """Store the finished response's conversation for a later `previous_response_id`."""
    if req.store:
        mine = segments(API, {"input": [item]})
        request.app[STORE].put(names.resp, (*req.conversation, *mine))


class _Events:
    """SSE framing: `event: <type>` + `data: {"type", "sequence_number", ...}`, numbered."""

    __slots__ = ("seq",)

    def __init__(self) -> None:
        self.seq = 0

    def __call__(self, kind: str, data: dict[str, Any]) -> bytes:
        frame = encode({"type": kind, "sequence_number": self.seq} | data)
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + frame + b"\n\n"

    def head(self, kind: str) -> bytes:
        """Start of a `kind` event up to its sequence number (for hand-built delta frames)."""
        name = kind.encode()
        self.seq += 1
        return b'event: %s\ndata: {"type":"%s","sequence_number":%d' % (name, name, self.seq - 1)


class _Sink(Protocol):
    async def write(self, data: bytes) -> None: ...

    async def write_eof(self, data: bytes = b"") -> None: ...


class _Socket:
    """WebSocket mode: each SSE frame the stream writes goes out as one text message holding
    its JSON (the event's `type` is inside it)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def write(self, data: bytes) -> None:
        for frame in data.split(b"\n\n"):
            _, sep, payload = frame.partition(b"data: ")
            if sep:
                await self.ws.send_str(payload.decode())

    async def write_eof(self, data: bytes = b"") -> None:
        await self.write(data)


async def socket(request: web.Request) -> web.StreamResponse:
    """GET /v1/responses upgraded to a WebSocket (OpenAI's WebSocket mode): each
    `{"type": "response.create", ...}` message (the POST body's fields; streaming is implicit)
    is answered with the events of a streamed response, as messages, one response at a time.
    `generate: false` (a client warming the connection up) answers with an empty completed
    response whose conversation a later `previous_response_id` continues. A bad message is
    answered with an `error` event and the connection stays open."""
    ws = web.WebSocketResponse(max_msg_size=64 << 20)
    await ws.prepare(request)
    sink = _Socket(ws)
    local: dict[str, tuple[str, ...]] = {}  # the last response's conversation, as OpenAI keeps
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            body = msgspec.json.decode(msg.data)
            if not isinstance(body, dict) or body.get("type") != "response.create":
                raise InvalidRequest(
                    'send {"type": "response.create", ...} with the fields of POST /v1/responses',
                    param="type",
                )
            body = {k: v for k, v in body.items() if k not in ("type", "stream")}
            req = _check(request.app, body, local)
            if body.get("generate") is False:
                local = {await _warmup(request, req, sink): req.conversation}
                continue
            gen = request.app[ENGINE].submit(
                req.ids,
                max_tokens=opt_int(body, "max_output_tokens", minimum=1),
                min_tokens=opt_int(body, "min_tokens") or 0,
                ignore_eos=opt_bool(body, "ignore_eos"),
                param="input",
            )
            names = _Names(request.app[STORE].salt, gen.number)
            try:
                item = await _events(request, req, gen, names, sink)
            finally:
                gen.cancel()
            if item is not None:
                local = {names.resp: (*req.conversation, *segments(API, {"input": [item]}))}
        except (EngineError, msgspec.DecodeError) as exc:
            err = exc if isinstance(exc, EngineError) else InvalidRequest(f"not JSON: {exc}")
            kind = "invalid_request_error" if err.status == 400 else "server_error"
            await ws.send_str(
                encode({"type": "error", "status": err.status,
                        "error": {"type": kind, "code": getattr(err, "code", None),
                                  "message": str(err), "param": getattr(err, "param", None)}}
                       ).decode()
            )
    return ws


async def _warmup(request: web.Request, req: Request, sink: _Sink) -> str:
    names = _Names(request.app[STORE].salt, next(_WARMUPS))
    if req.store:
        request.app[STORE].put(names.resp, req.conversation)
    ev = _Events()
    base = _response_fields(req, names)
    await sink.write(ev("response.created", {"response": base | {"status": "in_progress"}}))
    usage = {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": 0}
    await sink.write(ev("response.completed", {"response": base | {"status": "completed",
                                                                    "usage": usage}}))
    return names.resp


_WARMUPS = itertools.count(1 << 40)  # warm-up ids, apart from the engine's request numbers


def _response_fields(req: Request, names: _Names) -> dict[str, Any]:
    return {"id": names.resp, "object": "response", "created_at": req.created,
            "model": req.model, "output": [], "previous_response_id": req.previous,
            "store": req.store, "usage": None}


async def _stream(
    request: web.Request, req: Request, gen: Generation, names: _Names
) -> web.StreamResponse:
    resp = await prepare_sse(request)
    await _events(request, req, gen, names, resp)
    return resp


async def _events(
    request: web.Request, req: Request, gen: Generation, names: _Names, resp: _Sink
) -> dict[str, Any] | None:
    """Stream the response's events into `resp`; the finished output item (None if cut)."""
    ev = _Events()
    tool = req.tool
    at = {"output_index": 0}
    part = {"content_index": 0}
    if tool is None:
        kind, item_id = "response.output_text.delta", names.msg
        mid = b',"item_id":' + encode(item_id) + b',"output_index":0,"content_index":0,'
        mid += b'"logprobs":[],"delta":'
    else:
        kind, item_id = "response.function_call_arguments.delta", names.fc
        mid = b',"item_id":' + encode(item_id) + b',"output_index":0,"delta":'
    started = _response(req, gen, names, [], final=False)
    pos = 0

    def opening() -> bytes:
        out = ev("response.output_item.added", at | {"item": _item(req, gen, names, done=False)})
        if tool is None:
            added = {"item_id": item_id} | at | part | {"part": _text_part("")}
            out += ev("response.content_part.added", added)
        return out

    try:
        await resp.write(
            ev("response.created", {"response": started})
            + ev("response.in_progress", {"response": started})
        )
        async for n in gen:
            piece = output.text(pos, n)
            out = b""
            if pos == 0:
                out = opening()
                if tool is not None:
                    piece = tool.args.open() + piece
            pos += n
            await resp.write(out + ev.head(kind) + mid + encode(piece) + b"}\n\n")
    except ConnectionResetError:
        return None
    except EngineError as exc:
        failed = _response(req, gen, names, [], final=True, error=exc)
        await resp.write(ev("response.failed", {"response": failed}))
        await resp.write_eof()
        return None
    last = opening() if pos == 0 else b""
    item = _item(req, gen, names, done=True)
    ref = {"item_id": item_id} | at
    if tool is None:
        text = item["content"][0]["text"]
        last += ev("response.output_text.done", ref | part | {"text": text, "logprobs": []})
        last += ev("response.content_part.done", ref | part | {"part": item["content"][0]})
    else:
        last += ev.head(kind) + mid + encode(tool.args.close()) + b"}\n\n"
        done = {"name": tool.name, "arguments": item["arguments"]}
        last += ev("response.function_call_arguments.done", ref | done)
    last += ev("response.output_item.done", at | {"item": item})
    _remember(request, req, names, item)
    final = _response(req, gen, names, [item], final=True)
    end = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    last += ev(end, {"response": final})
    await resp.write(last)
    await resp.write_eof()
    return item
