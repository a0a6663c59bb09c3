"""The run loop with in-process fake endpoints in real time: levels, search, cancellation,
levels that cannot judge, failing servers. Nothing here asserts a wall-clock duration."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from fixtures_replay import make_corpus

from replay.endpoint import RealClock, Request, Result
from replay.level import Live, Timing
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
    measured = list(dict.fromkeys(lv.agents for lv in rec.levels))  # retries measure twice
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
    measuring = asyncio.Event()

    def tick(live: Live) -> None:
        if live.phase == "window" and live.completed:
            measuring.set()

    task = asyncio.create_task(run(rec, fleet(workload, epoch), Plan(tiers=[Tier(1, 5)],
                                   timing=slow, agents=2), epoch=epoch, on_tick=tick))
    await measuring.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.interrupted
    (level,) = rec.levels
    assert level.partial
    assert level.samples
    assert level.requests > 0
    assert rec.tiers[0].agents is None  # a partial level never answers a tier
    assert rec.tiers[0].status == "not measured"


class Failing:
    """A server answering HTTP 500 to every request, at once."""

    @property
    def form(self) -> Form:
        return "ids"

    async def send(self, request: Request) -> Result:
        now = time.perf_counter_ns()
        await asyncio.sleep(0)
        return Result(now, 0, now, 0, status=500, error="http_500")

    async def close(self) -> None:
        return None


async def test_one_level_that_fails_a_tier_does_not_answer_it_with_zero(
    workload: Workload,
) -> None:
    epoch = time.perf_counter_ns()
    plan = Plan(tiers=[Tier(100, 5), Tier(400, 5)], timing=TIMING, agents=4)
    rec = record()
    await run(rec, fleet(workload, epoch), plan, epoch=epoch)
    fast = rec.tiers[1]
    assert fast.agents is None  # 4 agents failed it; no smaller level was measured
    assert fast.status == "not measured"
    assert "4 agents" in fast.reason
    assert not fast.resolved


async def test_levels_too_short_to_judge_never_pass(workload: Workload) -> None:
    epoch = time.perf_counter_ns()
    short = dataclasses.replace(TIMING, min_requests=10_000, max_window=0.5)
    plan = Plan(tiers=[Tier(1, 60)], timing=short, max_agents=4)
    rec = record()
    await run(rec, fleet(workload, epoch), plan, epoch=epoch)
    assert rec.levels
    assert all(lv.short and lv.problem.startswith("short window") for lv in rec.levels)
    assert all(v.inconclusive and not v.passed for lv in rec.levels for v in lv.verdicts)
    assert rec.levels[1].agents == rec.levels[0].agents  # measured again, with longer windows
    assert rec.levels[1].window_end - rec.levels[1].window_start > short.duration
    (tier,) = rec.tiers
    assert tier.agents is None
    assert tier.status == "not measured"


async def test_a_level_whose_requests_all_fail_stops_early(workload: Workload) -> None:
    epoch = time.perf_counter_ns()
    slow = dataclasses.replace(TIMING, duration=600, max_window=600, warmup_min=600,
                               warmup_max=600)
    plan = Plan(tiers=[Tier(1, 60)], timing=slow, max_agents=64)
    worker = Worker(workload=workload, synth=Synth(block_size=64, tag="t"), endpoint=Failing(),
                    wait=parse("none"), clock=RealClock(), epoch=epoch, seed=0, tag="t")
    rec = record()
    await run(rec, LocalFleet(worker), plan, epoch=epoch)
    (level,) = rec.levels  # one agent failed everything: the ramp stops there
    assert level.stopped.startswith("stopped early")
    assert "http_500" in level.stopped
    assert level.errors == level.requests > 0
    assert level.verdicts[0].reason.startswith("error rate 100")
    (tier,) = rec.tiers
    assert tier.agents == 0
    assert tier.errors == level.errors

