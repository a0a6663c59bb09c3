"""A scripted upstream for capture tests: an aiohttp server on loopback whose responses are
byte-for-byte what the test registered, sent in the test's chunks with the test's delays, plus
a small OpenAI Responses generator (the simulated engine has no Responses API).

`POST|GET /s/<name>/<any path>` plays script `name`; `POST /gen/v1/responses` generates.
Every request is kept (`requests`), and the clock time each chunk was written (`sent`).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import brotli
import zstandard
from aiohttp import web

from corpus import TokenCache
from corpus.wire import apis, linearize


@dataclass
class Script:
    """A response: status, headers in order, body chunks, pause before each chunk."""

    chunks: list[bytes]
    status: int = 200
    headers: list[tuple[str, str]] = field(
        default_factory=lambda: [("Content-Type", "text/event-stream")]
    )
    delay: float = 0.0
    hang: bool = False  # keep the connection open after the last chunk
    gate: threading.Event | None = None
    """Chunks after the first wait for it (a test sets it once its client has hung up)."""


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


def sse(*events: dict[str, Any] | str, named: bool = False, crlf: bool = False) -> list[bytes]:
    """One chunk per event: `data: {json}` (with `event: <type>` when `named`), or a raw
    string such as "[DONE]"."""
    nl = "\r\n" if crlf else "\n"
    out = []
    for ev in events:
        data = ev if isinstance(ev, str) else json.dumps(ev)
        head = f"event: {ev['type']}{nl}" if named and isinstance(ev, dict) else ""
        out.append(f"{head}data: {data}{nl}{nl}".encode())
    return out


def compress_stream(chunks: list[bytes], encoding: str) -> list[bytes]:
    """Compress a stream incrementally, flushing after every chunk (as servers do for SSE)."""
    if encoding == "gzip":
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        out = [z.compress(c) + z.flush(zlib.Z_SYNC_FLUSH) for c in chunks]
        out[-1] += z.flush()
        return out
    if encoding == "br":
        b = brotli.Compressor()
        out = [b.process(c) + b.flush() for c in chunks]
        out[-1] += b.finish()
        return out
    if encoding == "zstd":
        zc = zstandard.ZstdCompressor().compressobj()
        out = [zc.compress(c) + zc.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for c in chunks]
        out[-1] += zc.flush()
        return out
    raise ValueError(encoding)


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "br":
        return brotli.compress(body)
    if encoding == "zstd":
        return zstandard.ZstdCompressor().compress(body)
    raise ValueError(encoding)


class Upstream:
    """The server's state; `app()` builds the aiohttp application around it."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.sent: dict[str, list[float]] = {}
        self.requests: list[Seen] = []
        self.counter = itertools.count(1)
        self.tokens = TokenCache()
        self.stored: dict[str, list[str]] = {}  # Responses: id -> conversation segments

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/gen/v1/responses", self._responses)
        app.router.add_route("*", "/s/{name}/{tail:.*}", self._play)
        return app

    async def _play(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.read()
        self.requests.append(Seen(request.path_qs, dict(request.headers), body))
        script = self.scripts[name]
        times = self.sent.setdefault(name, [])
        resp = web.StreamResponse(status=script.status)
        for key, value in script.headers:
            resp.headers.add(key, value)
        await resp.prepare(request)
        for i, chunk in enumerate(script.chunks):
            if i == 1 and script.gate is not None:
                await asyncio.to_thread(script.gate.wait, 60)
            if script.delay:
                await asyncio.sleep(script.delay)
            await resp.write(chunk)
            times.append(time.perf_counter())
        if script.hang:
            await asyncio.sleep(30)
        await resp.write_eof()
        return resp

    # -- a tiny Responses API ------------------------------------------------------------

    def _count(self, segments: list[str]) -> int:
        return sum(len(self.tokens.tokens(s)) for s in segments)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(Seen(request.path_qs, dict(request.headers), raw))
        body = json.loads(raw)
        api = apis.OPENAI_RESPONSES
        pre = linearize.segments(api, {k: body[k] for k in ("tools", "instructions") if k in body})
        items = body.get("input") or []
        new = linearize.segments(api, {"input": items})
        prev = self.stored.get(body.get("previous_response_id") or "", [])
        conv = prev + new
        n = next(self.counter)
        rid = f"resp_{n:08d}"
        last = items[-1] if isinstance(items, list) and items else {}
        if body.get("tools") and last.get("type", "message") == "message":
            tool = body["tools"][0]
            args = json.dumps({"path": f"src/file{n}.py"})
            item = {"type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n:06d}",
                    "name": tool["name"], "arguments": args, "status": "completed"}
            deltas = ["response.function_call_arguments.delta", args[:10], args[10:]]
            out_tokens = len(self.tokens.tokens(args))
        else:
            text = " the result is ready"
            item = {"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}
            deltas = ["response.output_text.delta", text[:8], text[8:]]
            out_tokens = len(self.tokens.tokens(text))
        reasoning = {"type": "reasoning", "id": f"rs_{n}", "summary": []}
        output = [reasoning, item]
        self.stored[rid] = conv + linearize.segments(api, {"input": output})
        usage = {
            "input_tokens": self._count(pre + conv),
            "input_tokens_details": {"cached_tokens": self._count(pre + prev) if prev else 0},
            "output_tokens": out_tokens + 3,
            "output_tokens_details": {"reasoning_tokens": 3},
            "total_tokens": 0,
        }
        response = {"id": rid, "object": "response", "created_at": 0, "status": "completed",
                    "model": body.get("model", ""), "output": output, "usage": usage,
                    "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
        if not body.get("stream"):
            return web.json_response(response)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        seq = itertools.count()
        created = dict(response, status="in_progress", output=[], usage=None)
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": created},
            {"type": "response.output_item.added", "output_index": 0, "item": reasoning},
            {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
            {"type": "response.output_item.added", "output_index": 1,
             "item": dict(item, **({"arguments": ""} if "arguments" in item else {}))},
        ]
        for piece in deltas[1:]:
            events.append({"type": deltas[0], "item_id": item["id"], "output_index": 1,
                           "content_index": 0, "delta": piece})
        events += [
            {"type": "response.output_item.done", "output_index": 1, "item": item},
            {"type": "response.completed", "response": response},
        ]
        for ev in events:
            ev["sequence_number"] = next(seq)
            await resp.write(f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode())
            await asyncio.sleep(0.002)
        await resp.write_eof()
        return resp
