"""Real clients through the proxy: the official openai and anthropic SDKs drive tool-using
conversations against the simulated engine (Chat Completions, Messages) and the scripted
upstream's Responses API; the corpus must hold them as the sessions they were."""

from __future__ import annotations

import threading
import time
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from capture_harness import Cap, Stack

from corpus import Session
from corpus.tokenizer import count
from corpus.wire import linearize

HANG = 300.0
"""SDK clients' time-out, a hang guard: their default 5 s connect time-out runs on the
client's event loop, which a loaded machine can stall for longer (seen: ConnectTimeout on
loopback with the connection already accepted)."""

pytestmark = pytest.mark.timeout(90)

SYSTEM = "You are a meticulous legal research agent. Cite every source you use. " * 12
CHAT_TOOLS = [{"type": "function", "function": {
    "name": "search_case_law", "description": "Search the case-law database.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                   "required": ["query"]}}}]
CLAUDE_TOOLS = [{"name": "Read", "description": "Read a file.",
                 "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
# pause before each call: a tool result comes back quickly, a user takes longer
PAUSES = [0.0, 0.06, 0.25, 0.1, 0.3, 0.05]


class Clock(httpx2.BaseTransport):
    """The HTTP transport under the SDK: notes when each request goes to the socket, and reads
    each response to its end as soon as it arrives (noting when), so the SDK's own parsing
    time counts as the client's overhead, as the server sees it, not as network delay."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()
        self.sent: list[float] = []
        self.received: list[float] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(time.perf_counter())
        response = self.inner.handle_request(request)
        body = b"".join(response.stream)  # type: ignore[union-attr]
        self.received.append(time.perf_counter())
        response.close()
        return httpx2.Response(response.status_code, headers=response.headers,
                               stream=httpx2.ByteStream(body), request=request,
                               extensions=response.extensions)

    def close(self) -> None:
        self.inner.close()

    def http(self) -> httpx2.Client:
        return httpx2.Client(transport=self)

    def gap(self, i: int) -> tuple[float, float]:
        """Bounds on the idle gap before request `i` as any observer on the way sees it: the
        proxy had the last byte of response i − 1 no later than the client, and request i no
        earlier than the client sent it (low); request i reached it before response i came
        back, and response i − 1 ended after request i − 1 was sent (high). They hold however
        loaded the machine is: no tolerance is needed."""
        return self.sent[i] - self.received[i - 1], self.received[i] - self.sent[i - 1]


def check_session(session: Session, sleeps: list[float], usages: list[tuple[int, int, int]],
                  tool: str, clock: Clock, streamed: bool) -> None:
    assert len(session.turns) == len(sleeps)
    assert [t.after for t in session.turns] == ["start", "tool", "user", "tool", "user", "tool"]
    for i, (turn, (prompt, cached, completion)) in enumerate(
        zip(session.turns, usages, strict=True)
    ):
        assert turn.status == 200
        assert turn.duration is not None
        # the recorded wait is the agent's idle gap as the proxy saw it (the test's sleep plus
        # the client's own overhead), within bounds the test measured itself
        if i:
            low, high = clock.gap(i)
            assert low >= sleeps[i]
            assert low - 1e-6 <= turn.wait <= high + 1e-6, (turn.wait, low, high)
        else:
            assert turn.wait >= 0
        assert (turn.usage_input, turn.usage_cached, turn.output) == (prompt, cached, completion)
        assert abs(turn.input - prompt) <= 0.05 * prompt
        if streamed:  # a non-streamed body shows no first token: ttft stays unrecorded
            assert turn.ttft is not None
            assert turn.duration >= turn.ttft
        else:
            assert turn.ttft is None
    calls = [t.tool_calls for t in session.turns]
    assert calls[0] == (tool,)
    assert calls[1] == ()
    prefixes = session.prefixes()
    for a, b in zip(prefixes, prefixes[1:], strict=False):
        shared = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                      min(len(a), len(b)))
        assert shared >= len(a) - 1  # each turn extends the last (a partial tail may change)


def chat_conversation(client: openai.OpenAI, stream: bool,
                      first: str = "Find precedent on implied warranties.",
                      pauses: list[float] = PAUSES,
                      clock: Clock | None = None) -> tuple[list[float], list[Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM},
                                      {"role": "user", "content": first}]
    usages = []
    sleeps = []
    for i, pause in enumerate(pauses):
        time.sleep(pause)
        sleeps.append(pause)
        kw: dict[str, Any] = dict(model="sim-32b", messages=messages, tools=CHAT_TOOLS,
                                  max_tokens=24)
        if stream:
            text, calls, usage = "", {}, None
            for chunk in client.chat.completions.create(
                stream=True, stream_options={"include_usage": True}, **kw
            ):
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    for tc in choice.delta.tool_calls or ():
                        slot = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                        slot["id"] = tc.id or slot["id"]
                        if tc.function:
                            slot["name"] += tc.function.name or ""
                            slot["args"] += tc.function.arguments or ""
            tool_calls = [{"id": c["id"], "type": "function",
                           "function": {"name": c["name"], "arguments": c["args"]}}
                          for c in calls.values()]
        else:
            resp = client.chat.completions.create(**kw)
            msg, usage = resp.choices[0].message, resp.usage
            text = msg.content or ""
            tool_calls = [tc.model_dump() for tc in msg.tool_calls or ()]
        assert usage is not None
        details = usage.prompt_tokens_details
        usages.append((usage.prompt_tokens, details.cached_tokens if details else None,
                       usage.completion_tokens))
        assistant: dict[str, Any] = {"role": "assistant", "content": text or None}
        if tool_calls:
            assistant["tool_calls"] = tool_calls
        messages.append(assistant)
        if tool_calls:
            for tc in tool_calls:
                messages.append({"role": "tool", "tool_call_id": tc["id"],
                                 "content": f"Three matching cases found (round {i})."})
        else:
            messages.append({"role": "user", "content": f"Now check jurisdiction {i}."})
    return sleeps, usages


@pytest.mark.parametrize("stream", [True, False])
def test_openai_sdk_tool_conversation_is_one_session(stack: Stack, cap: Cap, stream: bool) -> None:
    clock = Clock()
    with openai.OpenAI(base_url=stack.sim + "/v1", api_key="sk-test", max_retries=0, timeout=HANG,
                       http_client=clock.http()) as client:
        sleeps, usages = chat_conversation(client, stream, clock=clock)
    [session] = cap.sessions()
    assert session.api == "openai-chat"
    assert session.agent == "openai-python"
    assert session.model == "sim-32b"
    check_session(session, sleeps, usages, "tool-" + session.turns[0].tool_calls[0][5:], clock,
                  stream)
    assert session.turns[0].tool_calls[0].startswith("tool-")  # custom tool: pseudonymized


@pytest.mark.parametrize("cloud", ["anthropic", "vertex", "bedrock"])
@pytest.mark.parametrize("stream", [True, False])
def test_anthropic_sdk_tool_conversation_is_one_session(
    stack: Stack, cap: Cap, stream: bool, cloud: str, request: pytest.FixtureRequest
) -> None:
    """Also through the clouds' forms of the API, where the model is in the path:
    `AnthropicVertex` (`:streamRawPredict`) and `AnthropicBedrock` (SigV4-signed,
    `invoke-with-response-stream` answering in AWS event-stream frames)."""
    clock = Clock()
    client: anthropic.Anthropic | anthropic.AnthropicVertex | anthropic.AnthropicBedrock
    model = "sim-claude"
    if cloud == "vertex":
        client = anthropic.AnthropicVertex(
            region="us-east5", project_id="proj-test", access_token="ya29.test",
            base_url=stack.sim + "/v1", max_retries=0, timeout=HANG, http_client=clock.http())
    elif cloud == "bedrock":
        model = "us.anthropic.sim-claude-v1:0"
        client = anthropic.AnthropicBedrock(
            aws_access_key="AKIATESTTESTTESTTEST", aws_secret_key="test-secret",
            aws_region="us-east-1", base_url=stack.sim, max_retries=0, timeout=HANG,
            http_client=clock.http())
    else:
        client = anthropic.Anthropic(base_url=stack.sim, api_key="sk-ant-test", max_retries=0,
                                     timeout=HANG, http_client=clock.http())
    request.addfinalizer(client.close)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Read the engagement letter."}]
    sleeps, usages = [], []
    for i, pause in enumerate(PAUSES):
        time.sleep(pause)
        sleeps.append(pause)
        kw: dict[str, Any] = dict(model=model, max_tokens=24, system=SYSTEM,
                                  tools=CLAUDE_TOOLS, messages=messages)
        if stream:
            with client.messages.stream(**kw) as s:
                msg = s.get_final_message()
        else:
            msg = client.messages.create(**kw)
        u = msg.usage
        total = u.input_tokens + (u.cache_read_input_tokens or 0) + (
            u.cache_creation_input_tokens or 0)
        usages.append((total, u.cache_read_input_tokens or 0, u.output_tokens))
        content = [b.model_dump(exclude_none=True) for b in msg.content]
        messages.append({"role": "assistant", "content": content})
        uses = [b for b in msg.content if b.type == "tool_use"]
        if uses:
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": b.id, "content": f"Page {i} text."}
                for b in uses]})
        else:
            messages.append({"role": "user", "content": f"Next, clause {i}."})
    if cloud != "bedrock":  # (the SDK has no token counting on Bedrock)
        # counting tokens is not a model call (Vertex: `…/models/count-tokens:rawPredict`)
        assert client.messages.count_tokens(model=model, messages=messages).input_tokens
    [session] = cap.sessions()
    assert session.api == "anthropic-messages"
    assert session.agent == "anthropic-python"
    assert session.model == model
    check_session(session, sleeps, usages, "Read", clock, stream)
    assert {t.stop for t in session.turns} <= {"tool_use", "end_turn", "max_tokens"}


def test_concurrent_conversations_are_separate_sessions_sharing_prompt_blocks(
    stack: Stack, cap: Cap, request: pytest.FixtureRequest
) -> None:
    client = openai.OpenAI(base_url=stack.sim + "/v1", api_key="sk-test", max_retries=0,
                           timeout=HANG)
    request.addfinalizer(client.close)
    errors: list[BaseException] = []

    def run(first: str) -> None:
        try:
            chat_conversation(client, True, first=first, pauses=[0.0, 0.02, 0.05, 0.02])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(q,)) for q in
               ("Research statute of limitations.", "Draft a motion to dismiss.")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    sessions = cap.sessions()
    assert len(sessions) == 2
    assert all(len(s.turns) == 4 for s in sessions)
    a, b = (s.prefixes()[0] for s in sessions)
    preamble = linearize.segments("openai-chat", {"tools": CHAT_TOOLS, "messages": [
        {"role": "system", "content": SYSTEM}]})
    shared = sum(count(seg) for seg in preamble) // 64  # full blocks of tools + system prompt
    assert shared >= 3
    assert a[:shared] == b[:shared]
    assert a[shared:] != b[shared:]
    assert set(a[shared:]).isdisjoint(b[shared:])


def test_openai_responses_chain_is_one_session_with_rebuilt_context(
    stack: Stack, cap: Cap, request: pytest.FixtureRequest
) -> None:
    client = openai.OpenAI(base_url=stack.fake + "/gen/v1", api_key="sk-test", max_retries=0,
                           timeout=HANG)
    request.addfinalizer(client.close)
    tools = [{"type": "function", "name": "shell", "description": "Run a command.",
              "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}]
    previous = None
    new_input: list[Any] = [{"role": "user", "content": "List the repository files."}]
    usages = []
    for i in range(4):
        with client.responses.stream(model="gpt-5-codex", instructions="You are Codex.",
                                     tools=tools, input=new_input,
                                     previous_response_id=previous) as s:
            resp = s.get_final_response()
        assert resp.usage is not None
        usages.append(resp.usage.input_tokens)
        previous = resp.id
        calls = [o for o in resp.output if o.type == "function_call"]
        new_input = ([{"type": "function_call_output", "call_id": c.call_id, "output": "a.py"}
                      for c in calls] or [{"role": "user", "content": f"Next step {i}."}])
        time.sleep(0.05)
    [session] = cap.sessions()
    assert session.api == "openai-responses"
    assert [t.usage_input for t in session.turns] == usages
    assert [t.input for t in session.turns] == usages  # context rebuilt from the chain
    assert [t.after for t in session.turns] == ["start", "tool", "user", "tool"]
    assert all(t.reasoning == 3 for t in session.turns)
    assert session.turns[0].tool_calls == ("shell",)
