"""Canaries: random secrets placed everywhere an agent's traffic carries them must appear
nowhere in the corpus bytes (decompressed) or its keys sidecar."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import anthropic
import openai
import pytest
import zstandard
from capture_harness import Cap, Stack
from capture_upstream import Script, sse

from corpus import sidecar

HANG = 300.0
"""SDK clients' time-out, a hang guard: their default 5 s connect time-out runs on the
client's event loop, which a loaded machine can stall for longer (seen: ConnectTimeout on
loopback with the connection already accepted)."""

pytestmark = pytest.mark.timeout(60)


def canary(label: str) -> str:
    return f"{label}{secrets.token_hex(8)}"


def corpus_bytes(path: Path) -> bytes:
    """Every frame decompressed, plus the raw file."""
    raw = path.read_bytes()
    out = [raw]
    dctx = zstandard.ZstdDecompressor()
    with dctx.stream_reader(raw, read_across_frames=True) as reader:
        out.append(reader.read())
    return b"".join(out)


def test_no_secret_reaches_the_corpus_or_the_sidecar(stack: Stack, cap: Cap,
                                                     request: pytest.FixtureRequest) -> None:
    c = {k: canary(k) for k in (
        "key", "antkey", "prompt", "system", "toolarg", "toolresult", "toolname", "header",
        "session", "query", "userid", "respid", "callid", "model_text", "agentid")}
    # --- OpenAI SDK through the scripted upstream: tool call with secret args/name/id ---
    tool_call = {"choices": [{"index": 0, "delta": {"tool_calls": [{
        "index": 0, "id": "call_" + c["callid"], "type": "function",
        "function": {"name": "lookup_" + c["toolname"],
                     "arguments": json.dumps({"q": c["toolarg"]})}}]}}],
        "id": "chatcmpl-" + c["respid"]}
    stack.upstream.scripts["canary"] = Script(sse(
        tool_call,
        {"choices": [{"index": 0, "delta": {"content": "answer " + c["model_text"]},
                      "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 5,
                                                                "completion_tokens": 3}},
        "[DONE]"))
    client = openai.OpenAI(
        base_url=stack.fake + "/s/canary/v1", api_key="sk-" + c["key"], max_retries=0, timeout=HANG,
        default_headers={"X-Session-Id": c["session"], "X-Custom": c["header"]},
        default_query={"token": c["query"]},
    )
    request.addfinalizer(client.close)
    messages = [
        {"role": "system", "content": "Matter " + c["system"]},
        {"role": "user", "content": "Client said " + c["prompt"]},
    ]
    for _ in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
        pass
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_" + c["callid"], "type": "function",
            "function": {"name": "lookup_" + c["toolname"],
                         "arguments": json.dumps({"q": c["toolarg"]})}}]},
        {"role": "tool", "tool_call_id": "call_" + c["callid"], "content": c["toolresult"]},
    ]
    for _ in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
        pass
    # --- Anthropic SDK through the engine: metadata.user_id, x-api-key, sub-agent header ---
    ant = anthropic.Anthropic(
        base_url=stack.sim, api_key="sk-ant-" + c["antkey"], max_retries=0, timeout=HANG,
        default_headers={"x-claude-code-session-id": c["session"],
                         "x-claude-code-agent-id": c["agentid"]},
    )
    request.addfinalizer(ant.close)
    ant.messages.create(
        model="sim", max_tokens=8, system="Firm " + c["system"],
        metadata={"user_id": f"user_{c['userid']}_account_x_session_{c['session']}"},
        messages=[{"role": "user", "content": "Summarize " + c["prompt"]}],
    )
    sessions = cap.sessions()
    assert len(sessions) == 2
    assert sum(len(s.turns) for s in sessions) == 3
    tools = {name for s in sessions for t in s.turns for name in t.tool_calls}
    assert tools
    assert all(name.startswith("tool-") for name in tools)
    data = corpus_bytes(cap.path) + sidecar(cap.path).read_bytes()
    for label, value in c.items():
        for form in (value, value[len(label):]):  # with and without the readable label
            assert form.encode() not in data, f"{label} leaked"
            assert form.encode("utf-16-le") not in data, f"{label} leaked (utf-16)"
