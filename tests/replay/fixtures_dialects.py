"""A loopback server that answers like one server family, from recorded response shapes
(`fixtures/dialects/`): its /metrics text, the extension parameters it refuses with a 400, its
/tokenize (vLLM's shape) and cache-reset path, and its final streamed chunks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

HERE = Path(__file__).parent / "fixtures" / "dialects"
STREAMS: dict[str, list[str]] = json.loads((HERE / "streams.json").read_text())


def metrics(name: str) -> str:
    return (HERE / f"{name}.metrics").read_text()


@dataclass
class DialectServer:
    """`refuses`: body keys answered with OpenAI's 400 ("Unrecognized request argument");
    `template`: tokens its chat template adds (reported by /tokenize and in usage);
    `stream`: the recorded chunks it streams (the last may carry usage)."""

    metrics: str = ""
    refuses: frozenset[str] = frozenset()
    template: int | None = 22
    tokenize: bool = False
    reset: str | None = None
    stream: list[str] = field(default_factory=lambda: STREAMS["sglang"])
    server_header: str = ""
    ids_only: bool = False
    """No tokenizer (vLLM --skip-tokenizer-init): text prompts are refused."""
    root_text: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    resets: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._root)
        app.router.add_get("/v1/models", self._models)
        for path in ("/v1/chat/completions", "/v1/completions", "/v1/messages"):
            app.router.add_post(path, self._generate)
        if self.tokenize:
            app.router.add_post("/tokenize", self._tokenize)
        if self.reset:
            app.router.add_post(self.reset, self._reset)
        return app

    def _headers(self) -> dict[str, str]:
        return {"Server": self.server_header} if self.server_header else {}

    async def _metrics(self, _: web.Request) -> web.Response:
        if not self.metrics:
            return web.Response(status=404, headers=self._headers())
        return web.Response(text=self.metrics, headers=self._headers())

    async def _root(self, _: web.Request) -> web.Response:
        return web.Response(text=self.root_text or "ok", headers=self._headers())

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    async def _reset(self, _: web.Request) -> web.Response:
        self.resets += 1
        return web.json_response({"success": True})

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "messages" in body:
            words = sum(len(m["content"].split()) for m in body["messages"])
            return web.json_response({"count": words + (self.template or 0)})
        return web.json_response({"count": len(body["prompt"].split())})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        if self.ids_only and not isinstance(body.get("prompt"), list):
            return web.json_response({"error": {"message": "text input needs a tokenizer"}},
                                     status=400)
        bad = sorted(k for k in body if k in self.refuses)
        if isinstance(body.get("prompt"), list) and "token_ids" in self.refuses:
            bad.append("prompt")
        if bad:
            return web.json_response(
                {"error": {"message": f"Unrecognized request argument supplied: {bad[0]}",
                           "type": "invalid_request_error"}}, status=400)
        text = body.get("prompt") or " ".join(m["content"] for m in body.get("messages", []))
        prompt = len(text) if isinstance(text, list) else len(text.split())
        if "messages" in body:
            prompt += self.template or 0
        usage = {"prompt_tokens": prompt, "completion_tokens": body["max_tokens"]}
        if not body.get("stream"):
            return web.json_response({"choices": [{"text": "x"}], "usage": usage})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in self.stream:
            await resp.write(b"data: " + chunk.encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp
