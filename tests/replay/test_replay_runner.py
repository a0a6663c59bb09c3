"""The run loop with an in-process fake endpoint in real time: levels, search, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest
from fixtures_replay import make_corpus

from replay.endpoint import RealClock, Request, Result
from replay.level import Timing
from replay.prompts import Form, Synth
from replay.results import Corpus, Run
from replay.runner import Plan, run
from replay.search import Resolution
from replay.tiers import Tier
from replay.waits import parse
from replay.worker import Worker
from replay.workers import LocalFleet
from replay.workload import Workload

TIMING = Timing(duration=0.4, min_requests=3, max_window=1.0, ramp_per_agent=0.01, ramp_max=0.1,
                warmup_min=0.1, warmup_max=0.3, stable_span=0.1, drain=1.0, tick=0.05)


class Shared:
    """A server whose per-request speed falls as more requests are in flight:
    speed = 1000 / concurrency tok/s, so the 100 tok/s tier holds up to ~10 agents."""

    def __init__(self) -> None:
        self.active = 0

    @property
    def form(self) -> Form:
        return "ids"

    async def send(self, request: Request) -> Result:
        self.active += 1
        try:
            start = time.perf_counter_ns()
            await asyncio.sleep(0.001)
            first = time.perf_counter_ns()
            n = min(request.max_tokens, 20)
            await asyncio.sleep(n * self.active / 1000)
            return Result(start, first, time.perf_counter_ns(), n)
        finally:
            self.active -= 1

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    path = make_corpus(tmp_path_factory.mktemp("r") / "r.zst", sessions=4, turns=6)
    return Workload.load(path)


def record() -> Run:
    return Run(simulated=False, endpoint="fake", api="completions", model="m",
               corpus=Corpus(path="x", domain="d", sessions=1, turns=1, block_size=64,
                             tokenizer="cl100k_base", recorded_api="", ideal_cache_ratio=0.0),
               run_tag="t", seed=0)


def fleet(workload: Workload, epoch: int) -> LocalFleet:
    return LocalFleet(Worker(workload=workload, synth=Synth(block_size=64, tag="t"),
                             endpoint=Shared(), wait=parse("none"), clock=RealClock(),
                             epoch=epoch, seed=0, tag="t"))


async def test_search_brackets_a_concurrency_limited_server(workload: Workload) -> None:
    epoch = time.perf_counter_ns()
    plan = Plan(tiers=[Tier(100, 5), Tier(400, 5)], timing=TIMING, max_agents=64,
                resolution=Resolution(relative=0.3))
    rec = record()
    await run(rec, fleet(workload, epoch), plan, epoch=epoch)
    assert not rec.interrupted
    measured = [lv.agents for lv in rec.levels]
    assert measured[:3] == [1, 2, 4]
    low, high = rec.tiers
    assert 5 <= low.agents <= 14
    assert 1 <= high.agents <= 4
    assert low.level is not None
    assert rec.levels[low.level].agents == low.agents


async def test_cancellation_keeps_the_partial_level(workload: Workload) -> None:
    epoch = time.perf_counter_ns()
    slow = Timing(duration=30, min_requests=3, warmup_min=0.1, warmup_max=0.2, stable_span=0.1,
                  tick=0.05)
    rec = record()
    task = asyncio.create_task(run(rec, fleet(workload, epoch), Plan(tiers=[Tier(1, 5)],
                                   timing=slow, agents=2), epoch=epoch))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.interrupted
    (level,) = rec.levels
    assert level.partial
    assert level.samples
    assert level.requests > 0
    assert rec.tiers[0].agents == 0  # a partial level never answers a tier

