"""A discrete-event asyncio event loop: `time()` is virtual and jumps to the next timer as soon as
no task is ready, so `asyncio.sleep`, `call_at` and every `Clock` built on the loop run in
modelled time, as fast as the code can go and deterministically (no sockets, no sleeping).

The replay loop (agents, levels, the search) and the engine's step loop run on it unchanged; a
forecast is `virtual.run(main())`. Real I/O still works (the selector is polled without blocking
between jumps), and a loop with nothing scheduled blocks on it as usual, so a thread handing a
result back with `call_soon_threadsafe` is not lost; nothing a forecast runs needs either.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any

START_S = 1000.0
"""Virtual time at loop creation (seconds); any positive origin works, none is meaningful."""


class _Selector(selectors.BaseSelector):
    """A real selector whose `select(timeout)` polls without blocking and then advances the
    loop's virtual clock by `timeout` instead of waiting for it."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:  # nothing scheduled: only real I/O (a thread's wake-up) can come
            return self._real.select(None)
        if timeout <= 0:  # callbacks are ready: real I/O waits for the next jump (no syscall)
            return []
        ready = self._real.select(0)
        if not ready:
            self._loop.advance(timeout)
        return ready


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time (seconds from `START_S`)."""

    def __init__(self) -> None:
        self._now = START_S
        super().__init__(_Selector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move virtual time forward (only the selector calls this, when no task is ready)."""
        self._now += seconds


def run[T](main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on a fresh `VirtualLoop`.

    The main task's own result stays None: when the runner restores SIGINT, Python 3.12 formats
    the replaced handler — which holds the main task — into an error message it then discards,
    and a task's repr includes its result's (a whole forecast's record: seconds of CPU)."""
    out: list[T] = []

    async def keep() -> None:
        out.append(await main)

    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        runner.run(keep())
    return out[0]
