"""The proxy on the wire: what the agent receives is exactly what the upstream sent, as it was
sent; what the corpus receives is the anonymized turn."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import capture_fixtures as fx
import pytest
from capture_harness import Cap, Stack
from capture_upstream import Script, compress, compress_stream, sse

from capture.exchange import Exchange
from corpus.tokenizer import count
from corpus.wire import linearize

pytestmark = pytest.mark.timeout(60)

CHAT = [
    {"role": "system", "content": "You are a contracts assistant. " * 30},
    {"role": "user", "content": "Summarize clause 4."},
]


def chat_body(messages: list[dict[str, Any]] = CHAT, **extra: Any) -> bytes:
    return json.dumps({"model": "gpt-4o", "messages": messages, "stream": True, **extra}).encode()


def local_count(api: str, body: bytes) -> int:
    return sum(count(s) for s in linearize.segments(api, json.loads(body)))


async def fetch(
    url: str, body: bytes | None = None, *, method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, raw headers without Date, raw (still compressed) body."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.request(method, url, data=body, headers=headers) as resp:
            data = await resp.read()
            heads = [(k, v) for k, v in resp.raw_headers if k.lower() != b"date"]
            return resp.status, heads, data


async def both(stack: Stack, name: str, path: str, body: bytes | None = None,
               **kw: Any) -> tuple[Any, Any]:
    direct = await fetch(f"{stack.direct}/s/{name}/{path}", body, **kw)
    proxied = await fetch(f"{stack.fake}/s/{name}/{path}", body, **kw)
    return direct, proxied


@pytest.mark.parametrize("encoding", [None, "gzip", "br", "zstd"])
async def test_stream_is_byte_identical_and_recorded(stack: Stack, cap: Cap,
                                                     encoding: str | None) -> None:
    events = fx.CHAT_TEXT_STREAM.split(b"\n\n")[:-1]
    chunks = [e + b"\n\n" for e in events]
    chunks = [chunks[0][:7], chunks[0][7:] + chunks[1], *chunks[2:]]  # events span chunks
    headers = [("Content-Type", "text/event-stream"), ("X-Request-Id", "req_1")]
    if encoding:
        chunks = compress_stream(chunks, encoding)
        headers.append(("Content-Encoding", encoding))
    name = f"stream-{encoding}"
    stack.upstream.scripts[name] = Script(chunks, headers=headers, delay=0.01)
    direct, proxied = await both(stack, name, "v1/chat/completions", chat_body())
    assert proxied == direct
    assert direct[2] == b"".join(chunks)
    [session] = cap.sessions()
    [turn] = session.turns
    assert (turn.usage_input, turn.usage_cached, turn.output, turn.reasoning) == (1117, 1024, 46,
                                                                                  12)
    assert turn.input == local_count("openai-chat", chat_body())
    assert turn.stop == "stop"
    assert turn.status == 200
    assert turn.after == "start"
    assert turn.ttft is not None
    assert turn.duration is not None
    assert 0.005 < turn.ttft < turn.duration  # first content came in the second chunk
    assert session.api == "openai-chat"
    assert session.model == "gpt-4o"
    assert session.agent == "aiohttp"


async def test_first_chunk_arrives_before_the_upstream_sends_the_last(stack: Stack,
                                                                      cap: Cap) -> None:
    chunks = sse(*[{"choices": [{"index": 0, "delta": {"content": f"w{i}"}}]} for i in range(6)],
                 "[DONE]")
    stack.upstream.scripts["slow"] = Script(chunks, delay=0.15)
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        async with session.post(f"{stack.fake}/s/slow/v1/chat/completions",
                                data=chat_body()) as resp:
            first = await resp.content.readany()
            seen = time.perf_counter()
            sent_so_far = len(stack.upstream.sent["slow"])
            rest = await resp.read()
    done = time.perf_counter()
    assert first == chunks[0]
    assert sent_so_far < len(chunks)  # streamed through, not buffered
    assert first + rest == b"".join(chunks)
    [turn] = cap.sessions()[0].turns
    # bounded by the upstream's scheduled pauses (sleeps never end early) and by what the
    # client itself measured: they hold however loaded the machine is
    assert turn.ttft is not None
    assert 0.15 - 0.005 <= turn.ttft <= seen - start
    assert turn.duration is not None
    assert 0.15 * len(chunks) - 0.005 <= turn.duration <= done - start


async def test_other_traffic_passes_untouched_and_is_not_recorded(stack: Stack, cap: Cap) -> None:
    body = json.dumps({"object": "list", "data": [{"id": "gpt-4o"}]}).encode()
    stack.upstream.scripts["models"] = Script(
        [body], headers=[("Content-Type", "application/json"), ("Alt-Svc", 'h3=":443"')]
    )
    direct, proxied = await both(stack, "models", "v1/models", method="GET")
    assert proxied == direct
    assert direct[2] == body
    direct, proxied = await both(stack, "models", "v1/embeddings", b'{"input": "x"}')
    assert proxied == direct
    assert cap.sessions() == []
    assert cap.stats.skipped == 0


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
async def test_compressed_request_bodies_are_recorded(stack: Stack, cap: Cap,
                                                      encoding: str) -> None:
    stack.upstream.scripts["plain"] = Script(
        [json.dumps(fx.CHAT_BODY).encode()], headers=[("Content-Type", "application/json")]
    )
    raw = chat_body(stream=False)
    body = compress(raw, encoding)
    status, _, _ = await fetch(f"{stack.fake}/s/plain/v1/chat/completions", body,
                               headers={"Content-Encoding": encoding,
                                        "Content-Type": "application/json"})
    assert status == 200
    seen = stack.upstream.requests[-1]  # forwarded as sent (aiohttp may decode it for us)
    assert seen.headers["Content-Encoding"] == encoding
    assert seen.body in (body, raw)
    [turn] = cap.sessions()[0].turns
    assert turn.input == local_count("openai-chat", raw)
    assert turn.tool_calls == ("read_file",)
    assert turn.stop == "tool_calls"


@pytest.mark.parametrize(
    ("status", "body", "stop"),
    [
        (429, fx.OPENAI_ERROR_BODY, "error:tokens"),
        (500, {"error": {"message": "boom", "type": "server_error"}}, "error:server_error"),
        (529, fx.ANTHROPIC_ERROR_BODY, "error:rate_limit_error"),
    ],
)
async def test_http_errors_are_failed_turns(stack: Stack, cap: Cap, status: int,
                                            body: dict[str, Any], stop: str) -> None:
    name = f"err{status}"
    stack.upstream.scripts[name] = Script(
        [json.dumps(body).encode()], status=status,
        headers=[("Content-Type", "application/json"), ("Retry-After", "7")],
    )
    first_sent = time.perf_counter()
    direct, proxied = await both(stack, name, "v1/chat/completions", chat_body())
    answered = time.perf_counter()
    assert proxied == direct
    assert direct[0] == status
    # the agent retries the same request after a pause: a retry joins the failed session
    stack.upstream.scripts[name] = Script([fx.CHAT_TEXT_STREAM])
    await asyncio.sleep(0.2)
    sent = time.perf_counter()
    assert (await fetch(f"{stack.fake}/s/{name}/v1/chat/completions", chat_body()))[0] == 200
    [session] = cap.sessions()
    failed, retry = session.turns
    assert failed.status == status
    assert failed.stop == stop
    assert failed.output == 0
    assert failed.usage_input is None
    assert failed.ttft is None
    assert retry.status == 200
    assert retry.stop == "stop"
    assert retry.after == "user"
    # the proxy had the failure's end before the client and the retry after it was sent; the
    # retry reached it before its answer came back: bounds the test measured itself
    assert 0.2 <= sent - answered <= retry.wait <= time.perf_counter() - first_sent
    assert cap.stats.failed == 1


async def test_client_abort_mid_stream_is_a_partial_turn(stack: Stack, cap: Cap) -> None:
    chunks = sse(*[{"choices": [{"index": 0, "delta": {"content": " word"}}]}
                   for _ in range(4)], "[DONE]")
    # the rest of the stream waits until the client has hung up: a stalled client can then
    # never let the whole stream through first
    hung_up = threading.Event()
    stack.upstream.scripts["abort"] = Script(chunks, delay=0.3, gate=hung_up)
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{stack.fake}/s/abort/v1/chat/completions", data=chat_body())
        await resp.content.readany()
        resp.close()  # hang up mid-stream
        hung_up.set()
    deadline = time.perf_counter() + 30
    while not cap.stats.aborted:  # noqa: ASYNC110 - the proxy notices the hang-up on its own
        assert time.perf_counter() < deadline, "the abort was never recorded"
        await asyncio.sleep(0.01)
    noticed = time.perf_counter()
    cap.drain()
    [turn] = cap.sessions()[0].turns
    assert turn.stop == "aborted"
    assert turn.status == 200
    assert 1 <= turn.output < 4  # local count of what arrived
    assert turn.duration is not None
    assert turn.duration <= noticed - started  # cut at the hang-up, not the stream's end
    assert cap.stats.aborted == 1


async def test_recorder_failures_are_counted_and_never_reach_the_agent(
    stack: Stack, cap: Cap, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.upstream.scripts["boom"] = Script(fx.CHAT_TEXT_STREAM.split(b"\n\n", 2), delay=0.01)

    def explode(self: Any, ex: Exchange) -> None:
        raise RuntimeError("recorder bug")

    monkeypatch.setattr(type(cap.recorder), "process", explode)
    direct, proxied = await both(stack, "boom", "v1/chat/completions", chat_body())
    assert proxied == direct
    cap.drain()
    assert cap.stats.errors == 1
    assert cap.stats.where == {"record": 1}
    monkeypatch.undo()

    def broken_chunk(self: Exchange, data: bytes) -> bytes:
        raise MemoryError("stream hook bug")

    monkeypatch.setattr(Exchange, "response_chunk", broken_chunk)
    direct, proxied = await both(stack, "boom", "v1/chat/completions", chat_body())
    assert proxied == direct
    cap.drain()
    assert cap.stats.errors == 2
    assert cap.stats.where["stream"] == 1
    assert cap.sessions() == []


async def test_idle_sessions_close_and_a_later_call_starts_a_new_one(stack: Stack,
                                                                    tmp_path: Any) -> None:
    handle = Cap(stack, tmp_path / "idle.zst", idle=0.2)
    try:
        stack.upstream.scripts["idle"] = Script([fx.CHAT_TEXT_STREAM])
        body = chat_body()
        assert (await fetch(f"{stack.fake}/s/idle/v1/chat/completions", body))[0] == 200
        handle.drain()
        assert handle.stats.open == 1
        await asyncio.sleep(0.3)
        handle.recorder.tick()  # the worker does this every second
        assert handle.stats.open == 0
        longer = chat_body([*CHAT, {"role": "assistant", "content": "Hello there"},
                            {"role": "user", "content": "More."}])
        assert (await fetch(f"{stack.fake}/s/idle/v1/chat/completions", longer))[0] == 200
        first, second = handle.sessions()
    finally:
        handle.close()
    assert len(first.turns) == len(second.turns) == 1
    assert second.turns[0].after == "start"
    assert second.prefixes()[0][:3] == first.prefixes()[0][:3]  # ids stay consistent


async def test_upstream_path_prefix_is_prepended(stack: Stack, cap: Cap) -> None:
    stack.upstream.scripts["prefixed"] = Script([fx.CHAT_TEXT_STREAM])
    direct = await fetch(f"{stack.direct}/s/prefixed/v1/chat/completions", chat_body())
    proxied = await fetch(f"{stack.prefixed}/v1/chat/completions", chat_body())
    assert proxied == direct
    assert stack.upstream.requests[-1].path == "/s/prefixed/v1/chat/completions"
    assert len(cap.sessions()) == 1


async def test_a_body_that_is_not_json_is_skipped_not_an_error(stack: Stack, cap: Cap) -> None:
    stack.upstream.scripts["notjson"] = Script(
        [b'{"error": {"type": "invalid_request_error"}}'], status=400,
        headers=[("Content-Type", "application/json")],
    )
    direct, proxied = await both(stack, "notjson", "v1/chat/completions", b"model=gpt-4o")
    assert proxied == direct
    assert cap.sessions() == []
    assert (cap.stats.skipped, cap.stats.errors) == (1, 0)


STOP_AND_CONNECT = """
import asyncio, pathlib, socket, sys
from mitmproxy.net.free_port import get_free_port
from capture.listeners import Listener
from capture.proxy import Proxy
from capture.recorder import Recorder
from corpus import Header, Writer

async def main(tmp: pathlib.Path) -> None:
    recorder = Recorder(Writer(tmp / "c.zst", Header(domain="test")))
    proxy = Proxy(recorder, [Listener("127.0.0.1", get_free_port(), "http://127.0.0.1:9")],
                  confdir=tmp / "mitmproxy")
    (addr,) = await proxy.start()
    socket.create_connection(addr, timeout=30).close()  # the kernel accepts: no loop needed
    await proxy.stop()
    try:
        socket.create_connection(addr, timeout=30).close()
        print("still listening")
    except ConnectionRefusedError:
        print("refused")
    recorder.close()

asyncio.run(main(pathlib.Path(sys.argv[1])))
"""


@pytest.mark.timeout(300)  # a child importing mitmproxy on a loaded machine: a hang guard only
def test_a_stopped_proxy_frees_its_ports(tmp_path: Path) -> None:
    """mitmproxy's master leaves its listening sockets open when it shuts down (its own tool
    exits next); `Proxy.stop()` closes them, so a stopped proxy refuses connections at once.
    (Left open, they were the sockets garbage-collected at the end of full test runs.) In a
    child process: mitmproxy keeps one master per process (module globals), and this session's
    proxy must keep its own."""
    done = subprocess.run([sys.executable, "-c", STOP_AND_CONNECT, str(tmp_path)],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused"], done.stdout + done.stderr
