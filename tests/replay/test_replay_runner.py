"""The run loop with an in-process fake endpoint on virtual time (`replay.virtual`): levels,
search, cancellation — deterministic, and as fast as the code runs."""

from __future__ import annotations

import asyncio

import pytest
from fixtures_replay import make_corpus

from replay import virtual
from replay.clock import LoopClock
from replay.endpoint import Request, Result
from replay.fleet import LocalFleet, Worker
from replay.level import Timing
from replay.prompts import Form, Synth
from replay.results import Corpus, Run
from replay.runner import Plan, run
from replay.search import Resolution
from replay.tiers import Tier
from replay.waits import parse
from replay.workload import Workload

TIMING = Timing(duration=0.4, min_requests=3, max_window=1.0, ramp_per_agent=0.01, ramp_max=0.1,
                warmup_min=0.1, warmup_max=0.3, stable_span=0.1, drain=1.0, tick=0.05)


class Shared:
    """A server whose per-request speed falls as more requests are in flight:
    speed = 1000 / concurrency tok/s, so the 100 tok/s tier holds up to ~10 agents."""

    def __init__(self) -> None:
        self.active = 0
        self.clock = LoopClock()

    @property
    def form(self) -> Form:
        return "ids"

    async def send(self, request: Request) -> Result:
        self.active += 1
        try:
            start = self.clock.now()
            await asyncio.sleep(0.001)
            first = self.clock.now()
            n = min(request.max_tokens, 20)
            await asyncio.sleep(n * self.active / 1000)
            return Result(start, first, self.clock.now(), n)
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


def fleet(workload: Workload, clock: LoopClock, epoch: int) -> LocalFleet:
    return LocalFleet(Worker(workload=workload, synth=Synth(block_size=64, tag="t"),
                             endpoint=Shared(), wait=parse("none"), clock=clock,
                             epoch=epoch, seed=0, tag="t"))


async def search(workload: Workload) -> Run:
    clock = LoopClock()
    epoch = clock.now()
    plan = Plan(tiers=[Tier(100, 5), Tier(400, 5)], timing=TIMING, max_agents=64,
                resolution=Resolution(relative=0.3))
    rec = record()
    await run(rec, fleet(workload, clock, epoch), plan, epoch=epoch, clock=clock)
    return rec


def test_search_brackets_a_concurrency_limited_server(workload: Workload) -> None:
    rec = virtual.run(search(workload))
    assert not rec.interrupted
    measured = [lv.agents for lv in rec.levels]
    assert measured[:3] == [1, 2, 4]
    low, high = rec.tiers
    # no waits, so every agent has a request in flight: P25 speed is 950 / agents tok/s (20
    # tokens over 1 ms + 20 x agents ms); 100 tok/s holds 9 agents, 400 tok/s holds 2
    assert (low.agents, high.agents) == (8, 2)
    assert low.resolved
    assert high.resolved
    assert low.level is not None
    assert rec.levels[low.level].agents == low.agents
    failed = [lv.agents for lv in rec.levels if not lv.verdicts[0].passed]
    assert min(failed) == 10  # bracketed within the 30 % resolution


def test_the_same_seed_gives_the_same_run(workload: Workload) -> None:
    a, b = virtual.run(search(workload)), virtual.run(search(workload))
    assert a.levels
    assert a.levels == b.levels


async def cancelled_run(workload: Workload) -> Run:
    clock = LoopClock()
    epoch = clock.now()
    slow = Timing(duration=30, min_requests=3, warmup_min=0.1, warmup_max=0.2, stable_span=0.1,
                  tick=0.05)
    rec = record()
    task = asyncio.create_task(run(rec, fleet(workload, clock, epoch), Plan(tiers=[Tier(1, 5)],
                                   timing=slow, agents=2), epoch=epoch, clock=clock))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return rec


def test_cancellation_keeps_the_partial_level(workload: Workload) -> None:
    rec = virtual.run(cancelled_run(workload))
    assert rec.interrupted
    (level,) = rec.levels
    assert level.partial
    assert level.samples
    assert level.requests > 0
    assert rec.tiers[0].agents == 0  # a partial level never answers a tier

