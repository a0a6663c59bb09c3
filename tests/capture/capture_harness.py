"""The capture test harness: a background event loop, the running stack, and a fresh
corpus + recorder swapped into the running proxy per test (`Cap`)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from capture_upstream import Upstream

from capture.proxy import Proxy
from capture.recorder import Recorder
from corpus import Header, Reader, Session, Writer

T = TypeVar("T")


class Background:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="capture-test-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Stack:
    bg: Background
    upstream: Upstream
    direct: str  # the scripted upstream itself
    fake: str  # proxy listener -> scripted upstream
    engine: str  # the simulated engine itself
    sim: str  # proxy listener -> simulated engine
    prefixed: str  # proxy listener -> scripted upstream, upstream URL with a path prefix
    proxy: Proxy


class Cap:
    """A fresh corpus and recorder behind the running proxy."""

    def __init__(self, stack: Stack, path: Path, **recorder: Any) -> None:
        self.stack = stack
        self.path = path
        self.recorder = Recorder(Writer(path, Header(domain="test")), **recorder)
        self.recorder.start()
        stack.proxy.addon.recorder = self.recorder
        self._closed = False

    @property
    def stats(self) -> Any:
        return self.recorder.stats

    def drain(self) -> None:
        assert self.recorder.drain(20), "recorder did not catch up"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # a client can have a whole response before the proxy has seen the upstream end
            deadline = time.monotonic() + 60  # ends as soon as they finish
            while self.stack.proxy.addon.live and time.monotonic() < deadline:
                time.sleep(0.005)
            self.drain()
            self.recorder.close()

    def sessions(self) -> list[Session]:
        """Close the corpus and read it back (sessions sorted by id)."""
        self.close()
        return sorted(Reader(self.path).sessions(), key=lambda s: s.id)
