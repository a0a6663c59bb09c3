"""Start the built-in simulated engine (`replay serve`) as a subprocess on a free loopback port.

The engine prints `listening on http://HOST:PORT` as its first stdout line; its output after
that is drained and discarded so it can never block on a full pipe.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from types import TracebackType

from replay.errors import ReplayError

START_TIMEOUT_S = 60.0
PREFIX = "listening on "


def available() -> bool:
    """Whether this build ships the simulated engine."""
    try:
        return importlib.util.find_spec("replay.engine.cli") is not None
    except ImportError:
        return False


def error_band(profile: str) -> str:
    """The named engine profile's error band, as every simulated run must state it."""
    try:
        from replay.engine.profiles import PROFILES
    except ImportError:
        return "uncalibrated"
    chosen = PROFILES.get(profile)
    return chosen.error_band if chosen is not None else "uncalibrated"


class Simulated:
    """`async with Simulated("h100") as root:` yields `http://127.0.0.1:PORT` (no `/v1`)."""

    def __init__(self, profile: str = "h100", *, time_scale: float = 1.0) -> None:
        self.profile = profile
        self.time_scale = time_scale
        self.root = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._drains: list[asyncio.Task[bytes]] = []

    async def __aenter__(self) -> str:
        if not available():
            raise ReplayError(
                "the simulated engine (replay.engine) is not part of this build; "
                "pass --endpoint URL to replay against a server"
            )
        scale = [] if self.time_scale == 1.0 else ["--time-scale", repr(self.time_scale)]
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "replay.engine", "--port", "0", "--profile", self.profile,
            *scale,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        err = asyncio.create_task(self._proc.stderr.read())
        self._drains.append(err)
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            await self._stop()
            raise ReplayError(
                f"the simulated engine did not start within {START_TIMEOUT_S:g} s"
            ) from None
        text = line.decode("utf-8", "replace").strip()
        if not text.startswith(PREFIX):
            await self._stop()
            detail = (await err).decode("utf-8", "replace").strip().splitlines()
            why = detail[-1] if detail else text or "no output"
            raise ReplayError(f"the simulated engine failed to start: {why}")
        self.root = text[len(PREFIX):].strip().rstrip("/")
        self._drains.append(asyncio.create_task(self._proc.stdout.read()))
        return self.root

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        drains, self._drains = self._drains, []
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
