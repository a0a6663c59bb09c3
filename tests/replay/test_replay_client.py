"""The aiohttp client against loopback servers
(chat, completions with token ids, Anthropic messages, errors, unreachable)."""

from __future__ import annotations

import pytest
from fixtures_replay import FlakyServer, running

from replay.client import Client, base_url
from replay.endpoint import Request
from replay.errors import ConfigError, EndpointError
from replay.prompts import Prompt


@pytest.mark.parametrize(
    ("url", "base"),
    [("http://h:8000", "http://h:8000/v1"), ("http://h:8000/v1/", "http://h:8000/v1"),
     ("http://h:8000/v1/chat/completions", "http://h:8000/v1"),
     ("https://x.example/api/v1", "https://x.example/api/v1")],
)
def test_base_urls_are_normalized(url: str, base: str) -> None:
    assert base_url(url) == base


def test_non_http_endpoints_are_rejected() -> None:
    with pytest.raises(ConfigError):
        base_url("host:8000")


def req(n: int = 5, ids: bool = False) -> Request:
    p = Prompt(tokens=3, ideal_cached=0, text=None if ids else " a b c",
               ids=[1, 2, 3] if ids else None)
    return Request(p, n, "sess-1")


async def test_chat_streams_count_tokens_and_send_vllm_extras() -> None:
    srv = FlakyServer()
    async with running(srv.app()) as url:
        c = Client(url + "/v1", api="chat", model="m", api_key="k", affinity_header="x-session")
        r = await c.send(req(7))
        await c.close()
    assert r.error == ""
    assert r.output == 7
    assert 0 < r.start <= r.first <= r.end
    body = srv.bodies[0]
    assert body["messages"] == [{"role": "user", "content": " a b c"}]
    assert body["ignore_eos"] is True
    assert body["min_tokens"] == 7
    assert body["stream_options"] == {"include_usage": True}
    headers = srv.headers[0]
    assert headers["authorization"] == "Bearer k"
    assert headers["x-session"] == "sess-1"


async def test_completions_send_token_ids_and_read_usage() -> None:
    srv = FlakyServer()
    async with running(srv.app()) as url:
        c = Client(url, api="completions", model="m")
        assert c.form == "ids"
        r = await c.send(req(4, ids=True))
        await c.close()
    assert srv.bodies[0]["prompt"] == [1, 2, 3]
    assert r.server_input == 3
    assert r.server_cached == 0
    assert r.output == 4


async def test_server_errors_come_back_as_results() -> None:
    srv = FlakyServer(fail_every=1, status=429)
    async with running(srv.app()) as url:
        c = Client(url, model="m")
        r = await c.send(req())
        await c.close()
    assert r.error == "http_429"
    assert r.status == 429
    assert "nope" in r.detail


async def test_a_server_rejecting_extras_gets_plain_requests() -> None:
    from aiohttp import web

    seen: list[dict[str, object]] = []

    async def strict(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body)
        if "ignore_eos" in body:
            return web.json_response({"error": {"message": "Unrecognized request argument "
                                                "supplied: ignore_eos"}}, status=400)
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n')
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", strict)
    async with running(app) as url:
        c = Client(url, model="m")
        r1 = await c.send(req())
        r2 = await c.send(req())
        await c.close()
    assert r1.error == r2.error == ""
    assert r1.output == 1
    assert [("ignore_eos" in b) for b in seen] == [True, False, False]


async def test_anthropic_messages_against_the_simulated_engine(engine_url: str) -> None:
    c = Client(engine_url, api="anthropic", model="sim-instant")
    assert (await c.models()) == ["sim-instant"]
    r = await c.send(req(6))
    await c.close()
    assert r.error == ""
    assert r.output == 6
    assert r.server_input > 0
    assert r.first > 0


async def test_unreachable_endpoint_raises_a_clear_error() -> None:
    c = Client("http://127.0.0.1:9/v1", model="m")
    with pytest.raises(EndpointError, match="cannot reach"):
        await c.models()
    r = await c.send(req())
    await c.close()
    assert r.error == "connect"
