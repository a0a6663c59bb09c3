"""The simulated engine's Responses WebSocket mode (GET /v1/responses upgraded)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


async def _call(ws: aiohttp.ClientWebSocketResponse, message: Any) -> list[dict[str, Any]]:
    await ws.send_str(message if isinstance(message, str) else json.dumps(message))
    out: list[dict[str, Any]] = []
    async for msg in ws:
        out.append(json.loads(msg.data))
        if out[-1]["type"] in TERMINAL:
            break
    return out


async def test_calls_on_one_socket_chain_through_a_warm_up(engine_url: str) -> None:
    url = engine_url.replace("http", "ws", 1) + "/v1/responses"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        warm = await _call(ws, {"type": "response.create", "model": "m", "generate": False,
                                "instructions": "Answer in French. " * 30, "input": []})
        assert [e["type"] for e in warm] == ["response.created", "response.completed"]
        assert warm[-1]["response"]["usage"]["output_tokens"] == 0
        first = await _call(ws, {"type": "response.create", "model": "m", "input": "Bonjour",
                                 "previous_response_id": warm[-1]["response"]["id"],
                                 "max_output_tokens": 4, "ignore_eos": True})
        kinds = [e["type"] for e in first]
        assert kinds[0] == "response.created"
        assert kinds.count("response.output_text.delta") >= 1
        usage = first[-1]["response"]["usage"]
        assert usage["output_tokens"] == 4
        assert [e["sequence_number"] for e in first] == list(range(len(first)))
        # the chain carried the warm-up's conversation (empty here) and nothing else
        alone = await _call(ws, {"type": "response.create", "model": "m", "input": "Bonjour",
                                 "max_output_tokens": 4, "ignore_eos": True})
        assert alone[-1]["response"]["usage"]["input_tokens"] == usage["input_tokens"]


async def test_a_bad_message_gets_an_error_event_and_the_socket_stays_open(
    engine_url: str,
) -> None:
    url = engine_url.replace("http", "ws", 1) + "/v1/responses"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        (err,) = await _call(ws, "not json")
        assert err["type"] == "error"
        assert err["status"] == 400
        (err,) = await _call(ws, {"type": "response.create", "input": "no model"})
        assert err["error"]["param"] == "model"
        (err,) = await _call(ws, {"type": "session.update"})
        assert err["error"]["param"] == "type"
        ok = await _call(ws, {"type": "response.create", "model": "m", "input": "hi",
                              "max_output_tokens": 2})
        assert ok[-1]["type"] in ("response.completed", "response.incomplete")


async def test_a_socket_chains_its_last_response_even_with_store_false(engine_url: str) -> None:
    """Codex sends `store: false` and continues each response by id on the same socket (the
    connection keeps its last response, as OpenAI's WebSocket mode does)."""
    url = engine_url.replace("http", "ws", 1) + "/v1/responses"
    history = "Earlier context the warm-up carried. " * 40
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        warm = await _call(ws, {"type": "response.create", "model": "m", "generate": False,
                                "store": False, "input": history})
        chained = await _call(ws, {"type": "response.create", "model": "m", "store": False,
                                   "input": "next", "max_output_tokens": 2, "ignore_eos": True,
                                   "previous_response_id": warm[-1]["response"]["id"]})
        alone = await _call(ws, {"type": "response.create", "model": "m", "store": False,
                                 "input": "next", "max_output_tokens": 2, "ignore_eos": True})
    with_history = chained[-1]["response"]["usage"]["input_tokens"]
    assert with_history > alone[-1]["response"]["usage"]["input_tokens"] + 200
