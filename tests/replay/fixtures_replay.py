"""Helpers for the replay tests: synthetic corpora, a fake `Endpoint`, virtual time, a fake
OpenAI-compatible aiohttp server that can fail on purpose, and a `replay` child stopped by a
signal."""

from __future__ import annotations

import asyncio
import heapq
import json
import queue
import random
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from typer.testing import CliRunner

from corpus import Header, Turn, Writer
from replay.cli import app as replay_app
from replay.endpoint import Request, Result
from replay.prompts import Form

LIVE = ["--quick", "--duration", "1", "--warmup", "0.2", "--warmup-max", "60", "--no-progress"]
"""Short live-CLI windows for tests. `--warmup-max 60`: a level warms up until its completion
rate is steady (an event), with a generous deadline; a short one flags levels on a loaded
machine unstable and the run then exits 1 with nothing usable."""


class _Chain:
    """Block ids as capture makes them: a chained id over each block's token content, so
    shared prefixes share ids and a partial last block gets its own id."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.ids: dict[tuple[int, tuple[int, ...]], int] = {}

    def __call__(self, tokens: list[int]) -> list[int]:
        out: list[int] = []
        prev = 0
        for i in range(0, len(tokens), self.block_size):
            key = (prev, tuple(tokens[i : i + self.block_size]))
            prev = self.ids.setdefault(key, len(self.ids))
            out.append(prev)
        return out


def make_corpus(
    path: Path,
    *,
    sessions: int = 4,
    turns: int = 5,
    system: int = 150,
    growth: int = 90,
    output: int = 20,
    wait: float = 0.01,
    block_size: int = 64,
    seed: int = 1,
) -> Path:
    """A corpus whose sessions share a `system`-token prefix and grow by about `growth` tokens
    a turn. Block ids come from a chained hash over synthetic token content, as capture makes
    them, so shared prefixes share ids and a partial last block gets its own id."""
    rng = random.Random(seed)
    blocks_of = _Chain(block_size)

    shared = [rng.randrange(1 << 30) for _ in range(system)]
    with Writer(path, Header(domain="test", block_size=block_size), keys=False) as w:
        for s in range(sessions):
            sid = w.open_session(start=float(s), model="m", api="openai-chat", agent="test")
            tokens = list(shared)
            for t in range(turns):
                tokens += [rng.randrange(1 << 30) for _ in range(growth + rng.randrange(20))]
                w.add_turn(
                    sid,
                    Turn(t=float(t), input=len(tokens), output=output + rng.randrange(5),
                         wait=0.0 if t == 0 else wait, after="start" if t == 0 else "tool"),
                    blocks_of(tokens),
                )
                tokens += [rng.randrange(1 << 30) for _ in range(output)]
            w.close_session(sid)
    return path


@dataclass(frozen=True)
class Spec:
    """A session for `make_tree_corpus`: its start, parent (index into the spec list), turn
    times, recorded durations and waits, and private tokens per turn."""

    start: float
    parent: int | None = None
    t: tuple[float, ...] = (0.0, 10.0, 20.0)
    duration: float = 1.0
    output: int = 10
    growth: int = 70


def make_tree_corpus(
    path: Path, specs: list[Spec], *, system: int = 130, block_size: int = 64, seed: int = 2
) -> Path:
    """A corpus of `specs` in order (a parent before its sub-agents), every session starting
    with a shared `system`-token prefix; turn `i`'s wait is the recorded idle gap
    `t[i] − t[i−1] − duration`."""
    rng = random.Random(seed)
    blocks_of = _Chain(block_size)

    shared = [rng.randrange(1 << 30) for _ in range(system)]
    sids: list[int] = []
    with Writer(path, Header(domain="test", block_size=block_size), keys=False) as w:
        for spec in specs:
            parent = None if spec.parent is None else sids[spec.parent]
            sid = w.open_session(start=spec.start, model="m", api="openai-chat", agent="test",
                                 parent=parent)
            sids.append(sid)
            tokens = list(shared)
            for i, t in enumerate(spec.t):
                tokens += [rng.randrange(1 << 30) for _ in range(spec.growth)]
                wait = 0.0 if i == 0 else max(0.0, t - spec.t[i - 1] - spec.duration)
                w.add_turn(
                    sid,
                    Turn(t=t, input=len(tokens), output=spec.output, wait=wait,
                         duration=spec.duration, after="start" if i == 0 else "tool"),
                    blocks_of(tokens),
                )
                tokens += [rng.randrange(1 << 30) for _ in range(spec.output)]
            w.close_session(sid)
    return path


class SimClock:
    """Virtual nanoseconds for many concurrent tasks: `sleep_until` parks the caller until
    `advance` (driven by the test) moves time to the earliest pending deadline, once every
    runnable task has run."""

    def __init__(self, start: int = 1_000_000_000) -> None:
        self.t = start
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._n = 0

    def now(self) -> int:
        return self.t

    async def sleep_until(self, deadline: int) -> None:
        if deadline <= self.t:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._n += 1
        heapq.heappush(self._heap, (deadline, self._n, fut))
        await fut

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.t + int(seconds * 1e9))

    async def advance(self) -> bool:
        """Let every runnable task run, then wake the sleepers of the next deadline; False
        when nobody sleeps."""
        for _ in range(100):
            await asyncio.sleep(0)
        while self._heap and self._heap[0][2].done():  # cancelled sleepers
            heapq.heappop(self._heap)
        if not self._heap:
            return False
        deadline = self._heap[0][0]
        self.t = max(self.t, deadline)
        while self._heap and self._heap[0][0] <= self.t:
            fut = heapq.heappop(self._heap)[2]
            if not fut.done():
                fut.set_result(None)
        return True


@dataclass
class SimEndpoint:
    """Answers every request `latency_s` of `SimClock` time after it was sent (first token
    after `ttft_s`), generating exactly `max_tokens`; records (request, start, end) and the
    most requests it ever had in flight at once."""

    clock: SimClock
    ttft_s: float = 0.1
    latency_s: float = 0.5
    seen: list[tuple[Request, int, int]] = field(default_factory=list)
    active: int = 0
    peak: int = 0

    @property
    def form(self) -> Form:
        return "ids"

    async def send(self, request: Request) -> Result:
        start = self.clock.now()
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await self.clock.sleep_until(start + int(self.latency_s * 1e9))
        finally:
            self.active -= 1
        end = self.clock.now()
        self.seen.append((request, start, end))
        return Result(start, start + int(self.ttft_s * 1e9), end, request.max_tokens,
                      server_input=request.prompt.tokens, server_cached=0)

    async def close(self) -> None:
        return None


class FakeClock:
    """Virtual nanoseconds for a single agent: sleeping advances time (and yields once)."""

    def __init__(self, start: int = 1_000_000_000) -> None:
        self.t = start
        self.sleeps: list[int] = []

    def now(self) -> int:
        return self.t

    async def sleep_until(self, deadline: int) -> None:
        if deadline > self.t:
            self.sleeps.append(deadline - self.t)
            self.t = deadline
        await asyncio.sleep(0)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.t + int(seconds * 1e9))


@dataclass
class FakeEndpoint:
    """Answers every request after `latency_s` of virtual time (first token after `ttft_s`),
    generating exactly `max_tokens`; records the requests it saw."""

    clock: FakeClock
    form_: Form = "ids"
    ttft_s: float = 0.1
    latency_s: float = 0.5
    fail_every: int = 0
    seen: list[Request] = field(default_factory=list)

    @property
    def form(self) -> Form:
        return self.form_

    async def send(self, request: Request) -> Result:
        self.seen.append(request)
        start = self.clock.now()
        await asyncio.sleep(0)
        if self.fail_every and len(self.seen) % self.fail_every == 0:
            self.clock.t += 1_000_000
            return Result(start, 0, self.clock.t, 0, status=500, error="http_500")
        first = start + int(self.ttft_s * 1e9)
        self.clock.t = start + int(self.latency_s * 1e9)
        return Result(start, first, self.clock.t, request.max_tokens,
                      server_input=request.prompt.tokens, server_cached=0)

    async def close(self) -> None:
        return None


@dataclass
class FlakyServer:
    """A fake OpenAI-compatible server: streams `tokens` words per request (or `max_tokens`),
    and answers 500 / 429 to every `fail_every`-th request; with `cut`, closes every stream
    half-way; after `die_after` requests, drops every connection unanswered (a killed
    server)."""

    fail_every: int = 0
    status: int = 500
    delay_s: float = 0.0
    cut: bool = False
    die_after: int | None = None
    requests: int = 0
    bodies: list[dict[str, object]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model"}]})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text="# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"
                            'DCGM_FI_DEV_POWER_USAGE{gpu="0"} 300\n'
                            'DCGM_FI_DEV_POWER_USAGE{gpu="1"} 200\n')

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.json()
        self.bodies.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.die_after is not None and self.requests > self.die_after:
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never sent: the connection is gone
        if self.fail_every and self.requests % self.fail_every == 0:
            return web.json_response({"error": {"message": "nope"}}, status=self.status)
        n = int(body.get("max_tokens", 16))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        prompt = body.get("prompt")
        inp = len(prompt) if isinstance(prompt, list) else 0
        for i in range(n):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.cut and i == n // 2:
                assert request.transport is not None
                request.transport.close()  # mid-stream, no end
                return resp
            chunk = {"choices": [{"index": 0, "delta": {"content": " x"}, "text": " x"}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"prompt_tokens": inp, "completion_tokens": n,
                 "prompt_tokens_details": {"cached_tokens": 0}}
        await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


@asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1, port 0; yields `http://127.0.0.1:PORT`."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextmanager
def app_in_thread(app: web.Application) -> Iterator[str]:
    """Serve `app` on its own event loop in a daemon thread (for code that calls asyncio.run)."""
    ready: queue.Queue[str | BaseException] = queue.Queue()
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        loop_box.append(asyncio.get_running_loop())
        async with running(app) as url:
            ready.put(url)
            await stop[0].wait()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting test
            ready.put(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    got = ready.get(timeout=60)  # a hang guard
    if isinstance(got, BaseException):
        raise got
    try:
        yield got
    finally:
        loop_box[0].call_soon_threadsafe(stop[0].set)
        thread.join(10)


def signal_at(cmd: list[str], env: dict[str, str], marker: str, sig: signal.Signals, *,
              hang_s: float) -> tuple[int, str]:
    """Run `cmd`, send it `sig` once a line of its output contains `marker` (an event, not a
    sleep), and return its exit code and whole output. `hang_s` guards against a child that
    never exits: the test then fails with the child's signal masks and output."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            text=True)
    assert proc.stdout is not None
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                proc.send_signal(sig)
                break
        else:
            pytest.fail(f"no progress line with {marker!r}: " + "".join(seen))
        try:
            rest, _ = proc.communicate(timeout=hang_s)
        except subprocess.TimeoutExpired:
            masks = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            proc.kill()
            rest, _ = proc.communicate()
            pytest.fail("no exit after the signal; " + " ".join(
                m for m in masks if m.startswith(("SigIgn", "SigCgt"))) + "\n" + "".join(seen)
                + rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, "".join(seen) + rest


def invoke(*args: str) -> tuple[int, str]:
    """`replay ARGS` in this process: its exit code and output."""
    result = CliRunner().invoke(replay_app, list(args))
    return result.exit_code, result.output
