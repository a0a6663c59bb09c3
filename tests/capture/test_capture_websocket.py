"""Responses over a WebSocket (Codex's default transport, the SDKs' `responses.connect()`):
through the real proxy to the simulated engine's WebSocket mode, with an aiohttp client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from capture_harness import Cap, Stack

from capture.socket import Socket, event_type
from corpus.tokenizer import count
from corpus.wire import apis

pytestmark = pytest.mark.timeout(90)

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")
TOOLS = [{"type": "function", "name": "exec", "description": "Run a shell command.",
          "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}]
INSTRUCTIONS = "You are a coding agent working in a git repository. " * 20


TIMES: dict[str, list[float]] = {"sent": [], "received": []}
"""When `_call` sent each request and had each terminal event (perf_counter, the proxy's
clock), so a test bounds recorded waits by its own measurements."""


async def _call(ws: aiohttp.ClientWebSocketResponse, body: dict[str, Any]) -> list[bytes]:
    TIMES["sent"].append(time.perf_counter())
    await ws.send_str(json.dumps({"type": "response.create", **body}))
    got: list[bytes] = []
    async for msg in ws:
        got.append(msg.data.encode())
        if json.loads(msg.data)["type"] in TERMINAL:
            TIMES["received"].append(time.perf_counter())
            break
    return got


async def _agent(url: str, pauses: list[float]) -> tuple[list[list[bytes]], list[dict[str, Any]]]:
    """A Codex-like agent on one socket: a warm-up, then tool rounds chained by
    previous_response_id, each sending only its new items (as WebSocket mode does)."""
    events: list[list[bytes]] = []
    bodies: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(
        url.replace("http", "ws", 1) + "/v1/responses",
        headers={"session_id": "codex-ws-1", "authorization": "Bearer sk-secret-ws"},
    ) as ws:
        warm = await _call(ws, {"model": "gpt-5-codex", "generate": False, "input": [],
                                "tools": TOOLS, "instructions": INSTRUCTIONS})
        previous = json.loads(warm[-1])["response"]["id"]
        new: list[dict[str, Any]] = [{"role": "user", "content": "Run the failing tests."}]
        for pause in pauses:
            await asyncio.sleep(pause)
            body = {"model": "gpt-5-codex", "tools": TOOLS, "instructions": INSTRUCTIONS,
                    "previous_response_id": previous, "input": new, "max_output_tokens": 12,
                    "tool_choice": "required"}
            bodies.append(body)
            got = await _call(ws, body)
            events.append(got)
            final = json.loads(got[-1])["response"]
            previous = final["id"]
            call = final["output"][0]
            new = [{"type": "function_call_output", "call_id": call["call_id"],
                    "output": "FAILED tests/test_x.py::test_y - AssertionError " * 8}]
    return events, bodies


def test_websocket_session_is_recorded_with_chained_context(stack: Stack, cap: Cap) -> None:
    pauses = [0.0, 0.15, 0.05]
    TIMES["sent"].clear()
    TIMES["received"].clear()
    events, bodies = stack.bg.run(_agent(stack.sim, pauses))
    sent, received = TIMES["sent"][1:], TIMES["received"][1:]  # after the warm-up
    (session,) = cap.sessions()
    assert cap.stats.warmups == 1
    assert cap.stats.errors == 0
    assert len(session.turns) == len(pauses)
    assert session.api == apis.OPENAI_RESPONSES
    prefixes = session.prefixes()
    for i, turn in enumerate(session.turns):
        reported = json.loads(events[i][-1])["response"]["usage"]
        assert turn.usage_input == reported["input_tokens"]
        assert turn.output == reported["output_tokens"]
        # the whole chained context, though the socket carried only the new items
        assert abs(turn.input - reported["input_tokens"]) <= 0.05 * reported["input_tokens"]
        assert turn.ttft is not None
        if i:
            assert prefixes[i][: len(prefixes[i - 1]) - 1] == prefixes[i - 1][:-1]
            assert turn.after == "tool"
            # the proxy had the previous response's end no later than the agent and this
            # request no earlier than the agent sent it; the bounds need no tolerance
            low, high = sent[i] - received[i - 1], received[i] - sent[i - 1]
            assert low >= pauses[i]
            assert low - 1e-6 <= turn.wait <= high + 1e-6, (turn.wait, low, high)
    assert session.turns[-1].input > session.turns[0].input + 2 * count(
        bodies[1]["input"][0]["output"]
    ) // 3
    stored = cap.path.read_bytes() + cap.path.with_name(cap.path.name + ".keys").read_bytes()
    for secret in (b"sk-secret-ws", b"codex-ws-1", b"failing tests", b"coding agent"):
        assert secret not in stored


def test_websocket_bytes_reach_the_client_unchanged(stack: Stack, cap: Cap) -> None:
    via_proxy, _ = stack.bg.run(_agent(stack.sim, [0.0]))
    direct, _ = stack.bg.run(_agent(stack.engine, [0.0]))
    cap.close()
    # same event sequence (ids and timestamps differ between the two runs)
    assert [event_type(m) for m in via_proxy[0]] == [event_type(m) for m in direct[0]]


def test_a_socket_closed_mid_response_is_an_aborted_turn() -> None:
    sock = Socket(apis.OPENAI_RESPONSES, {})
    t = time.perf_counter()
    assert sock.client(b'{"type":"response.create","model":"m","input":"hi"}', t) is None
    assert sock.server(b'{"type":"response.created","response":{"id":"r1"}}', t + 0.1) is None
    assert sock.client(b'{"type":"response.cancel"}', t + 0.2) is None  # not a new call
    cut = sock.end(t + 0.3)
    assert cut is not None
    assert cut.error == "aborted"
    assert len(cut.chunks) == 1
    assert sock.end(t + 0.4) is None


def test_event_type_is_read_wherever_the_field_is() -> None:
    assert event_type(b'{"type":"response.completed","response":{}}') == "response.completed"
    assert event_type(b'{"sequence_number":3,"type":"error","error":{}}') == "error"
    assert event_type(b"not json") == ""
