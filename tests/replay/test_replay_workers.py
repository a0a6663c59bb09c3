"""Worker processes: a worker that dies is a clear error, not a traceback or a hang."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fixtures_replay import make_corpus

from replay.client import ClientFactory
from replay.errors import ReplayError
from replay.processes import ProcessFleet, Settings


async def test_a_dead_worker_is_reported_as_a_replay_error(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c.zst", sessions=2, turns=2)
    fleet = ProcessFleet(
        Settings(corpus=str(corpus)), ClientFactory(url="http://127.0.0.1:9/v1"), 1
    )
    await fleet.start()
    try:
        proc = fleet._procs[0]
        proc.kill()
        await asyncio.to_thread(proc.join, 10)
        deadline = time.monotonic() + 60  # a hang guard: the loop sees the closed pipe at once
        while 0 not in fleet._dead and time.monotonic() < deadline:  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.02)
        with pytest.raises(ReplayError, match="worker process 0 exited unexpectedly"):
            await fleet.begin(0, 1, 0, 0.0)
    finally:
        await fleet.close()
