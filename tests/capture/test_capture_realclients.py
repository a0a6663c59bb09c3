"""Request shapes observed from real agent clients through the proxy, replayed into the recorder.

Written by hand from what Claude Code 2.1.197 (`claude -p`) and Codex 0.169 (`codex exec`) sent
(header names and values' form, body structure); every text, id and key here is synthetic.

Observed, Claude Code (`ANTHROPIC_BASE_URL`, API-key mode), per `claude -p` run:
- `HEAD /` (connectivity probe; not a model call), then `POST /v1/messages?beta=true`, all
  streamed, each with `x-claude-code-session-id` (same value as the `session_id` inside the
  JSON string `metadata.user_id`), `x-app: cli`, User-Agent `claude-cli/<v> (external, sdk-cli)`.
- A side call first (no tools, one user message), then the main conversation (24-25 tools, the
  first one `Agent`). A sub-agent's calls keep the session header and add
  `x-claude-code-agent-id`; they arrive while the main conversation has made one call, exactly
  as many as the side call.
- `system[0]` is the billing block, `x-anthropic-billing-header: cc_version=<version>.<3 hex
  fingerprint of the first user message>; cc_entrypoint=<cli|sdk-cli|...>;` plus ` cch=<nonce>;`
  against api.anthropic.com, ` cc_workload=<name>;` and, in sub-agents, ` cc_is_subagent=true;`.

Observed, Codex (`openai_base_url` or a custom provider): `POST /v1/responses` streamed, headers
`session-id` = `thread-id` (root thread), `x-client-request-id`, `x-codex-window-id`,
`x-codex-turn-metadata` (JSON), `originator: codex_exec`, User-Agent `codex_exec/<v> (...)`;
body `input` items carry `id` and `internal_chat_message_metadata_passthrough` (turn id,
`create_time`), plus `prompt_cache_key` and `client_metadata`. The built-in provider first tries
`GET /v1/responses` as a WebSocket upgrade.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from capture_fixtures import RESPONSES_STREAM
from mitmproxy import flow as mflow
from mitmproxy.test import tflow

from capture import hints
from capture.addon import Capture
from capture.exchange import Exchange
from capture.listeners import Listener
from capture.proxy import _quiet_cancellations
from capture.recorder import Recorder
from capture.wire import FORMATS
from corpus import Header, Reader, Session, Writer
from corpus.wire import SSEDecoder

CC_VERSION = "9.8.765"
CC_SYSTEM = "You are a synthetic coding agent. Follow the synthetic rules. " * 120
SUB_SYSTEM = "You are a synthetic helper agent. Report back briefly. " * 60


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events
    )


def anthropic_stream(tool: str | None = None, tool_id: str = "toolu_01") -> bytes:
    """A Messages stream as the engine/API sends it: one text block, or one tool_use block."""
    if tool is None:
        block: dict[str, Any] = {"type": "text", "text": ""}
        delta: dict[str, Any] = {"type": "text_delta", "text": "synthetic answer"}
        stop = "end_turn"
    else:
        block = {"type": "tool_use", "id": tool_id, "name": tool, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": '{"description": "synthetic"}'}
        stop = "tool_use"
    return _sse([
        {"type": "message_start", "message": {
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "stop_reason": None,
            "usage": {"input_tokens": 10, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": block},
        {"type": "content_block_delta", "index": 0, "delta": delta},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": stop},
         "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ])


def billing(fingerprint: str, entrypoint: str = "sdk-cli", extra: str = "") -> str:
    return (f"x-anthropic-billing-header: cc_version={CC_VERSION}.{fingerprint}; "
            f"cc_entrypoint={entrypoint};{extra}")


def cc_headers(session: str, agent: str | None = None) -> dict[str, str]:
    out = {
        "accept": "application/json",
        "content-type": "application/json",
        "user-agent": f"claude-cli/{CC_VERSION} (external, sdk-cli)",
        "x-claude-code-session-id": session,
        "x-stainless-lang": "js",
        "x-stainless-retry-count": "0",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "anthropic-dangerous-direct-browser-access": "true",
        "anthropic-version": "2023-06-01",
        "x-app": "cli",
        "accept-encoding": "gzip, deflate, br, zstd",
    }
    if agent is not None:
        out["x-claude-code-agent-id"] = agent
    return out


def tool(name: str, first: str = "description") -> dict[str, Any]:
    return {"name": name, "description": f"Synthetic {name} tool.", "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {first: {"type": "string"}, "prompt": {"type": "string"}},
        "required": [first], "additionalProperties": False}}


MAIN_TOOLS = [tool("Agent"), tool("Bash", "command"), tool("Read", "file_path")]
SUB_TOOLS = [tool("Bash", "command"), tool("Read", "file_path")]


def cc_body(session: str, system: list[dict[str, Any]], messages: list[dict[str, Any]],
            tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": "claude-synthetic",
        "messages": messages,
        "system": system,
        "tools": tools,
        "metadata": {"user_id": json.dumps(
            {"device_id": "0" * 64, "account_uuid": "", "session_id": session},
            separators=(",", ":"))},
        "max_tokens": 32000,
        "thinking": {"budget_tokens": 31999, "type": "enabled"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "stream": True,
    }


def main_system(fingerprint: str, entrypoint: str = "sdk-cli") -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": billing(fingerprint, entrypoint)},
        {"type": "text", "text": "You are a synthetic CLI.",
         "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": CC_SYSTEM, "cache_control": {"type": "ephemeral"}},
    ]


def user_turn(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>synthetic context</system-reminder>"},
        {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]}


class Feed:
    """Hands exchanges to a recorder the way the addon does (no proxy needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rec = Recorder(Writer(path, Header(domain="test")))
        self.t = time.perf_counter()

    def call(self, api: str, headers: dict[str, str], body: dict[str, Any],
             response: bytes) -> None:
        self.t += 0.05
        ex = Exchange(api=api, headers=headers, unix=time.time(), t_start=self.t,
                      request=[json.dumps(body).encode()], t_sent=self.t + 0.001, status=200,
                      content_type="text/event-stream", t_headers=self.t + 0.002,
                      chunks=[(self.t + 0.01, response)], t_end=self.t + 0.011)
        self.rec.process(ex)
        self.t += 0.02

    def sessions(self) -> list[Session]:
        self.rec.close()
        return sorted(Reader(self.path).sessions(), key=lambda s: s.id)


def test_claude_code_sub_agent_is_parented_to_the_conversation_not_the_side_call(
    tmp_path: Path,
) -> None:
    feed = Feed(tmp_path / "cc.zst")
    sid = "11111111-2222-4333-8444-555555555555"
    api = "anthropic-messages"
    # 1. side call: no tools, one message, its own fingerprint
    feed.call(api, cc_headers(sid),
              cc_body(sid, main_system("aaa"), [user_turn("synthetic side request")], []),
              anthropic_stream())
    # 2. the main conversation starts and hands out an Agent call
    task = [user_turn("synthetic task")]
    feed.call(api, cc_headers(sid), cc_body(sid, main_system("bbb"), task, MAIN_TOOLS),
              anthropic_stream("Agent", "toolu_main1"))
    # 3. the sub-agent runs while the main conversation waits (one call each so far)
    sub_system = [
        {"type": "text", "text": billing("ccc", extra=" cc_is_subagent=true;")},
        {"type": "text", "text": SUB_SYSTEM, "cache_control": {"type": "ephemeral"}},
    ]
    feed.call(api, cc_headers(sid, agent="a0123456789abcdef"),
              cc_body(sid, sub_system, [user_turn("synthetic sub task")], SUB_TOOLS),
              anthropic_stream())
    # 4. the main conversation gets the Agent result
    task2 = task + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_main1",
                                           "name": "Agent", "input": {"description": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_main1",
                                      "content": "synthetic result"}]},
    ]
    feed.call(api, cc_headers(sid), cc_body(sid, main_system("bbb"), task2, MAIN_TOOLS),
              anthropic_stream())
    side, main, sub = feed.sessions()
    assert [len(s.turns) for s in (side, main, sub)] == [1, 2, 1]
    assert main.turns[0].tool_calls == ("Agent",)
    assert main.turns[1].after == "tool"
    assert side.parent is None
    assert main.parent is None
    assert sub.parent == main.id  # was the side call: the lane's "main" on a 1-1 tie
    assert {s.agent for s in (side, main, sub)} == {"claude-code"}


def _common(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


def test_claude_code_billing_block_does_not_split_sessions_prompt_blocks(tmp_path: Path) -> None:
    """Two conversations with different first messages (so different `cc_version`
    fingerprints), one interactive (`cli`) and one `-p` (`sdk-cli`), other builds, nonces and
    workload tags: everything before the user message is the same prompt."""
    feed = Feed(tmp_path / "cc.zst")
    api = "anthropic-messages"
    a_sys = main_system("f00")
    a_sys[0] = {"type": "text", "text": billing("f00", "sdk-cli", " cch=00000; cc_workload=a;")}
    b_sys = main_system("e1d", entrypoint="cli")
    b_sys[0] = {"type": "text", "text": billing("e1d", "cli", " cch=9a8b7; cc_workload=cron;")
                .replace(CC_VERSION, "9.9.1")}
    feed.call(api, cc_headers("s-a"), cc_body("s-a", a_sys, [user_turn("first synthetic ask")],
                                              MAIN_TOOLS), anthropic_stream())
    feed.call(api, cc_headers("s-b"), cc_body("s-b", b_sys, [user_turn("other synthetic ask")],
                                              MAIN_TOOLS), anthropic_stream())
    a, b = feed.sessions()
    pa, pb = a.prefixes()[0], b.prefixes()[0]
    assert len(pa) > 20
    assert _common(pa, pb) >= len(pa) - 1  # only the block holding the user message differs


def test_claude_code_same_prompt_twice_shares_every_block(tmp_path: Path) -> None:
    feed = Feed(tmp_path / "cc.zst")
    for sid in ("run-1", "run-2"):
        feed.call("anthropic-messages", cc_headers(sid),
                  cc_body(sid, main_system("c4a"), [user_turn("same synthetic ask")], MAIN_TOOLS),
                  anthropic_stream("Agent"))
    a, b = feed.sessions()
    assert a.prefixes() == b.prefixes()


def codex_headers(session: str, thread: str | None = None) -> dict[str, str]:
    meta = {"session_id": session, "thread_id": thread or session, "turn_id": "t-1",
            "request_kind": "turn", "sandbox_mode": "read-only"}
    return {
        "version": "0.169.0",
        "x-codex-beta-features": "remote_compaction_v2",
        "x-codex-window-id": f"{session}:0",
        "x-codex-turn-metadata": json.dumps(meta),
        "x-client-request-id": session,
        "session-id": session,
        "thread-id": thread or session,
        "accept": "text/event-stream",
        "content-type": "application/json",
        "originator": "codex_exec",
        "user-agent": "codex_exec/0.169.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.169.0)",
    }


def codex_item(role: str, text: str, n: int, created: float) -> dict[str, Any]:
    return {"type": "message", "id": f"item_{n:036d}", "role": role,
            "content": [{"type": "input_text", "text": text}],
            "internal_chat_message_metadata_passthrough": {
                "turn_id": "t-1", "create_time": created, "content_item_kinds": ["text"]}}


def codex_body(session: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": "gpt-synthetic", "stream": True, "input": items,
        "tools": [{"type": "function", "name": "exec_command", "description": "Run it.",
                   "strict": False, "parameters": {"type": "object", "properties": {
                       "cmd": {"type": "string"}}, "required": ["cmd"]}}],
        "tool_choice": "auto", "parallel_tool_calls": True, "reasoning": {"summary": "auto"},
        "store": False, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": session, "client_metadata": {"x-codex-installation-id": "i"},
    }


def test_codex_exec_run_is_one_session_and_item_metadata_does_not_split_blocks(
    tmp_path: Path,
) -> None:
    feed = Feed(tmp_path / "cx.zst")
    for run, created in (("01a2-run-one", 1.0e9), ("01a2-run-two", 2.0e9)):
        items = [codex_item("developer", "synthetic developer rules " * 80, 1, created),
                 codex_item("user", "synthetic environment context", 2, created),
                 codex_item("user", "synthetic ask", 3, created)]
        feed.call("openai-responses", codex_headers(run), codex_body(run, items),
                  RESPONSES_STREAM)
        items += [
            {"type": "function_call", "id": "fc_1", "call_id": "call_q1", "status": "completed",
             "name": "shell", "arguments": '{"command":["ls"]}',
             "internal_chat_message_metadata_passthrough": {"turn_id": "t-1"}},
            {"type": "function_call_output", "id": "item_out", "call_id": "call_q1",
             "output": "synthetic output",
             "internal_chat_message_metadata_passthrough": {"turn_id": "t-1",
                                                            "create_time": created + 5}},
        ]
        feed.call("openai-responses", codex_headers(run), codex_body(run, items),
                  RESPONSES_STREAM)
    one, two = feed.sessions()
    assert [len(one.turns), len(two.turns)] == [2, 2]
    assert one.parent is None
    assert two.parent is None
    assert one.agent == two.agent == "codex"
    assert one.turns[1].after == "tool"
    assert one.prefixes() == two.prefixes()  # item ids and create_time are not prompt text


def test_codex_hint_sets_a_provider_of_its_own() -> None:
    """Codex 0.169 ignores OPENAI_BASE_URL; a provider entry (or `openai_base_url`) points it
    at the listener, and both of its transports (HTTP + SSE, WebSocket) are recorded."""
    lines = "\n".join(hints.reverse(Listener("127.0.0.1", 0, "https://api.openai.com"), 8082))
    codex = [ln for ln in lines.splitlines() if "Codex" in ln][0]
    assert "OPENAI_BASE_URL" not in codex
    assert "supports_websockets" not in codex
    assert 'base_url="http://127.0.0.1:8082/v1"' in codex
    assert 'wire_api="responses"' in codex
    assert 'openai_base_url="http://127.0.0.1:8082/v1"' in lines


# -- Ctrl-C with a call in flight (Claude Code mid-answer, or any streaming client) -----------


class _Collect:
    """Stands in for the recorder: keeps what the addon submits."""

    def __init__(self) -> None:
        self.submitted: list[Exchange] = []

    def submit(self, ex: Exchange) -> None:
        self.submitted.append(ex)

    def failure(self, where: str, exc: BaseException) -> None:
        raise AssertionError(f"{where}: {exc!r}")


def test_ctrl_c_records_an_in_flight_call_once() -> None:
    """At shutdown `done` records the live call as aborted; mitmproxy then tears the
    connection down and reports the same flow to `error`: that must not record it again as
    an upstream failure (it did: two turns, `aborted` and `error:upstream`, one Exchange)."""
    rec = _Collect()
    addon = Capture(rec)  # type: ignore[arg-type]
    f = tflow.tflow(resp=False)
    f.request.method = "POST"
    f.request.path = "/v1/messages?beta=true"
    f.request.headers["x-claude-code-session-id"] = "s"
    addon.requestheaders(f)
    addon.request(f)
    f.response = tflow.tresp()
    f.response.headers["content-type"] = "text/event-stream"
    addon.responseheaders(f)
    addon.done()
    f.error = mflow.Error("connection cancelled")
    addon.error(f)
    addon.response(f)
    assert len(rec.submitted) == 1
    assert rec.submitted[0].error == "aborted"


def test_anthropic_stream_cut_before_message_delta_has_no_output_usage() -> None:
    """message_start carries `output_tokens: 1` as a placeholder; a stream cut before
    message_delta must leave the output to the recorder's local count of the text."""
    events = SSEDecoder().feed(_sse([
        {"type": "message_start", "message": {
            "id": "msg_01", "type": "message", "role": "assistant", "model": "m", "content": [],
            "usage": {"input_tokens": 8, "cache_read_input_tokens": 0, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "text", "text": ""}},
        *[{"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": "synthetic words "}} for _ in range(50)],
    ]))
    parser = FORMATS["anthropic-messages"].Stream()
    for event in events:
        parser.feed(event, 0.0)
    result = parser.result()
    assert result.usage is not None
    assert result.usage.input == 8
    assert result.usage.output is None
    full = FORMATS["anthropic-messages"].Stream()
    for event in events + SSEDecoder().feed(_sse([
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 100}},
        {"type": "message_stop"},
    ])):
        full.feed(event, 0.0)
    assert full.result().usage.output == 100  # type: ignore[union-attr]


def test_shutdown_cancellations_do_not_reach_the_terminal() -> None:
    seen: list[dict[str, Any]] = []
    handle = _quiet_cancellations(lambda loop, ctx: seen.append(ctx))
    loop = asyncio.new_event_loop()
    try:
        handle(loop, {"message": "Exception in callback", "exception": asyncio.CancelledError()})
        assert seen == []
        other = {"message": "boom", "exception": RuntimeError("x")}
        handle(loop, other)
        assert seen == [other]
    finally:
        loop.close()
