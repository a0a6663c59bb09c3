"""The run loop with an in-process fake endpoint on virtual time (`replay.virtual`): levels,
search, cancellation — deterministic, and as fast as the code runs."""

from __future__ import annotations

import asyncio
import dataclasses

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
    assert rec.tiers[0].agents is None  # a partial level never answers a tier
    assert rec.tiers[0].status == "not measured"


class Failing:
    """A server answering HTTP 500 to every request, at once."""

    def __init__(self) -> None:
        self.clock = LoopClock()

    @property
    def form(self) -> Form:
        return "ids"

    async def send(self, request: Request) -> Result:
        now = self.clock.now()
        await asyncio.sleep(0.001)
        return Result(now, 0, self.clock.now(), 0, status=500, error="http_500")

    async def close(self) -> None:
        return None


async def measured(workload: Workload, plan: Plan, endpoint: object | None = None) -> Run:
    clock = LoopClock()
    epoch = clock.now()
    rec = record()
    worker = Worker(workload=workload, synth=Synth(block_size=64, tag="t"),
                    endpoint=endpoint or Shared(), wait=parse("none"), clock=clock,  # type: ignore[arg-type]
                    epoch=epoch, seed=0, tag="t")
    await run(rec, LocalFleet(worker), plan, epoch=epoch, clock=clock)
    return rec


def test_one_level_that_fails_a_tier_does_not_answer_it_with_zero(workload: Workload) -> None:
    plan = Plan(tiers=[Tier(100, 5), Tier(400, 5)], timing=TIMING, agents=4)
    rec = virtual.run(measured(workload, plan))
    fast = rec.tiers[1]
    assert fast.agents is None  # 4 agents failed it; no smaller level was measured
    assert fast.status == "not measured"
    assert "4 agents" in fast.reason
    assert not fast.resolved
    assert rec.tiers[0].agents == 4
    assert rec.tiers[0].status == "at limit"


def test_levels_too_short_to_judge_never_pass(workload: Workload) -> None:
    short = dataclasses.replace(TIMING, min_requests=10_000, max_window=0.5)
    plan = Plan(tiers=[Tier(1, 60)], timing=short, max_agents=4)
    rec = virtual.run(measured(workload, plan))
    assert rec.levels
    assert all(lv.short and lv.problem.startswith("short window") for lv in rec.levels)
    assert all(v.inconclusive and not v.passed for lv in rec.levels for v in lv.verdicts)
    assert rec.levels[1].agents == rec.levels[0].agents  # measured again, with longer windows
    assert rec.levels[1].window_end - rec.levels[1].window_start > short.max_window
    (tier,) = rec.tiers
    assert tier.agents is None
    assert tier.status == "not measured"


def test_an_unstable_level_is_measured_again_longer_and_only_then_answers(
    workload: Workload,
) -> None:
    never = dataclasses.replace(TIMING, stable_span=5.0)  # two spans never fit the warm-up
    plan = Plan(tiers=[Tier(1, 60)], timing=never, agents=2)
    rec = virtual.run(measured(workload, plan))
    assert [lv.agents for lv in rec.levels] == [2, 2]
    assert all(not lv.stable and "not stable" in lv.problem for lv in rec.levels)
    assert rec.levels[1].warmup_s > rec.levels[0].warmup_s  # the retry warmed up longer
    assert rec.tiers[0].agents is None


def test_repeats_give_the_answer_an_interval(workload: Workload) -> None:
    plan = Plan(tiers=[Tier(100, 5)], timing=TIMING, max_agents=64,
                resolution=Resolution(absolute=1), repeats=2)
    rec = virtual.run(measured(workload, plan))
    (tier,) = rec.tiers
    assert tier.agents is not None
    assert tier.repeats == 2
    assert tier.interval is not None
    low, high = tier.interval
    assert low == tier.agents
    assert high is not None
    assert high >= low
    boundary = [lv.agents for lv in rec.levels if lv.agents in (tier.agents, high + 1)]
    assert len(boundary) >= 4  # both sides measured twice


def test_a_level_whose_requests_all_fail_stops_early(workload: Workload) -> None:
    slow = dataclasses.replace(TIMING, duration=600, max_window=600, warmup_min=600,
                               warmup_max=600)
    plan = Plan(tiers=[Tier(1, 60)], timing=slow, max_agents=64)
    rec = virtual.run(measured(workload, plan, Failing()))
    (level,) = rec.levels  # one agent failed everything: the ramp stops there
    assert level.stopped.startswith("stopped early")
    assert "http_500" in level.stopped
    assert level.window_end - level.started < 600  # stopped long before its window
    assert level.errors == level.requests > 0
    assert level.verdicts[0].reason.startswith("error rate 100")
    (tier,) = rec.tiers
    assert tier.agents == 0
    assert tier.errors == level.errors

