"""Fixtures for capture tests.

One session-wide stack: the scripted upstream (`capture_upstream.py`) and the capture
proxy run on an event loop in a background thread (mitmproxy in-process, like the `capture`
command), and the simulated engine (`replay.engine`) on its own. The proxy has one reverse
listener per upstream: `stack.fake` → scripted upstream, `stack.sim` → engine,
`stack.prefixed` → scripted upstream with the path prefix `/s/prefixed`. Each test that
records gets a fresh corpus and recorder swapped into the running proxy (`cap`), so tests
share one proxy yet never share a corpus. Agents are real clients in the test's thread: the
openai and anthropic SDKs, aiohttp.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from capture_harness import Background, Cap, Stack
from capture_upstream import Upstream
from mitmproxy.net.free_port import get_free_port

from capture.listeners import Listener
from capture.proxy import Proxy
from capture.recorder import Recorder
from corpus import Header, Writer
from replay.engine import Running, serve_in_thread


@pytest.fixture(scope="session", autouse=True)
def _quick_gil_handoffs() -> Iterator[None]:
    """Clients, proxy, recorder and engine share this process (in production the agent is
    another process); a short switch interval keeps GIL handoffs from adding 5 ms steps to
    the timings the tests check."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    yield
    sys.setswitchinterval(before)


@pytest.fixture(scope="session")
def engine() -> Iterator[Running]:
    with serve_in_thread("instant") as running:
        yield running


@pytest.fixture(scope="session")
def stack(engine: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("capture")
    bg = Background()
    upstream = Upstream()
    runner = web.AppRunner(upstream.app(), access_log=None, handle_signals=False)
    bg.run(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    bg.run(site.start())
    host, port = runner.addresses[0][:2]
    direct = f"http://{host}:{port}"
    idle = Recorder(Writer(tmp / "idle.zst", Header(domain="test")))
    proxy = Proxy(
        idle,
        [
            Listener("127.0.0.1", get_free_port(), direct),
            Listener("127.0.0.1", get_free_port(), engine.url),
            Listener("127.0.0.1", get_free_port(), direct, prefix="/s/prefixed"),
        ],
        confdir=tmp / "mitmproxy",
    )

    async def start() -> list[tuple[str, int]]:
        return await proxy.start()

    addrs = bg.run(start())
    yield Stack(
        bg=bg,
        upstream=upstream,
        direct=direct,
        fake=f"http://127.0.0.1:{addrs[0][1]}",
        engine=engine.url,
        sim=f"http://127.0.0.1:{addrs[1][1]}",
        prefixed=f"http://127.0.0.1:{addrs[2][1]}",
        proxy=proxy,
    )
    bg.run(proxy.stop())
    bg.run(runner.cleanup())
    bg.close()
    idle.close()


@pytest.fixture
def cap(stack: Stack, tmp_path: Path) -> Iterator[Cap]:
    handle = Cap(stack, tmp_path / "corpus.zst")
    yield handle
    handle.close()
