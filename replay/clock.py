"""Time for the replay loop: the `Clock` protocol, the monotonic clock live runs use, and the
event-loop clock a forecast runs on (virtual time, see `replay.virtual`).

Times are integer nanoseconds. `RealClock` reads `time.perf_counter_ns` (CLOCK_MONOTONIC, the
same in every process of the machine); `LoopClock` reads the running event loop's `time()`, which
is the same monotonic clock on a normal loop and modelled time on a `replay.virtual` loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Clock(Protocol):
    """Monotonic time in nanoseconds and ways to wait on it; a forecast substitutes virtual
    time, so nothing in the replay loop may read another clock or sleep another way."""

    def now(self) -> int: ...

    async def sleep_until(self, deadline: int) -> None: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """`time.perf_counter_ns` and `asyncio.sleep`."""

    def __init__(self, sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        self._sleep = sleep or asyncio.sleep

    def now(self) -> int:
        return time.perf_counter_ns()

    async def sleep_until(self, deadline: int) -> None:
        delay = (deadline - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await self._sleep(delay)

    async def sleep(self, seconds: float) -> None:
        await self._sleep(max(0.0, seconds))


class LoopClock:
    """The running event loop's clock (`loop.time()`), for code that must share time with
    timers: on a `replay.virtual` loop this is modelled time. Call only inside the loop."""

    def now(self) -> int:
        return int(asyncio.get_running_loop().time() * 1e9)

    async def sleep_until(self, deadline: int) -> None:
        loop = asyncio.get_running_loop()
        delay = deadline / 1e9 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
