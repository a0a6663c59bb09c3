"""Measure an open population (`--arrivals`): sessions arrive on a schedule and leave when they
end, so the number of agents is an outcome, not a setting. One level: arrivals from the start,
a warm-up of `timing.warmup_min`, a window of `timing.duration` judged against every tier (with
the SLO attainment of its requests), the agents in flight sampled every tick, then the drain.
Arrivals stop at the window's end; sessions still running are cut after the drain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from replay.arrivals import Arrivals
from replay.clock import Clock
from replay.level import Live, Raw, Timing, power_summary
from replay.power import Recorder
from replay.results import Level, Run, Sample, TierResult
from replay.runner import Plan, finish_level
from replay.scrapers import CacheCounters
from replay.workload import Workload


class OpenFleet(Protocol):
    """A fleet that can run an open population (`replay.fleet.LocalFleet`)."""

    async def begin_open(self, level: int, arrivals: Sequence[tuple[int, int]]) -> None: ...

    def take(self) -> list[Sample]: ...

    @property
    def inflight(self) -> int: ...

    @property
    def sessions(self) -> int: ...

    async def finish(self, before: int, drain: float) -> list[Sample]: ...


async def measure_open(
    fleet: OpenFleet,
    schedule: Sequence[tuple[float, int]],
    *,
    timing: Timing,
    epoch: int,
    clock: Clock,
    recorder: Recorder | None = None,
    counters: CacheCounters | None = None,
    on_tick: Callable[[Live], None] | None = None,
    on_start: Callable[[Raw], None] | None = None,
) -> Raw:
    """Run `schedule` ((seconds from the start, root index) pairs) as one level."""

    def rel(ns: int) -> float:
        return (ns - epoch) / 1e9

    t0 = clock.now() + int(0.05e9)
    started = rel(t0)
    window_start = started + timing.warmup_min
    window_end = window_start + timing.duration
    level = Level(agents=0, index=0, started=started, window_start=window_start,
                  window_end=window_start, warmup_s=timing.warmup_min, stable=True,
                  partial=True, arrivals=sum(1 for t, _ in schedule
                                             if timing.warmup_min <= t < timing.warmup_min
                                             + timing.duration))
    raw = Raw(level=level)
    got = raw.samples
    if on_start is not None:
        on_start(raw)
    await fleet.begin_open(0, [(t0 + int(t * 1e9), root) for t, root in schedule])
    live = Live(level=0, agents=0)
    c0 = None
    began = False
    try:
        while True:
            await clock.sleep(timing.tick)
            got.extend(fleet.take())
            now = rel(clock.now())
            level.in_flight.append((round(now, 3), fleet.sessions))
            live.elapsed = now - started
            live.agents = fleet.sessions
            live.inflight = fleet.inflight
            live.completed = sum(1 for s in got if not s.error)
            live.errors = len(got) - live.completed
            if now < window_start:
                live.phase = "warm-up"
                continue
            if counters is not None and not began:
                began = True
                c0 = await counters.begin()
            live.phase = "window"
            level.window_end = min(now, window_end)
            live.window_requests = sum(1 for s in got if s.start >= window_start)
            if on_tick is not None:
                on_tick(live)
            if now >= window_end:
                break
    except BaseException:
        got.extend(fleet.take())
        raise
    if counters is not None:
        raw.server = await counters.end(c0)
        if raw.server is not None:
            raw.counters = raw.server.cache_hit_ratio
    inside = [n for t, n in level.in_flight if window_start <= t <= window_end]
    level.agents = round(sum(inside) / len(inside)) if inside else 0
    before = epoch + int(window_end * 1e9)
    got.extend(await fleet.finish(before, timing.drain))
    level.partial = False
    if recorder is not None:
        await recorder.reach(before)
        level.power = power_summary(recorder, epoch, level)
    return raw


async def run_open(
    record: Run,
    fleet: OpenFleet,
    plan: Plan,
    arrivals: Arrivals,
    workload: Workload,
    *,
    epoch: int,
    clock: Clock,
    seed: int = 0,
    recorder: Recorder | None = None,
    counters: CacheCounters | None = None,
    on_tick: Callable[[Live], None] | None = None,
    on_level: Callable[[Level], None] | None = None,
) -> Run:
    """Measure `arrivals` as one level and answer every tier with the window's mean agents in
    flight when it passed (0 when not) and the SLO attainment; fills `record` in place."""
    timing = plan.timing
    schedule = arrivals.schedule(workload, seed=seed, horizon=timing.warmup_min + timing.duration)
    record.arrivals = arrivals.describe()
    current: list[Raw] = []
    try:
        raw = await measure_open(fleet, schedule, timing=timing, epoch=epoch, clock=clock,
                                 recorder=recorder, counters=counters, on_tick=on_tick,
                                 on_start=current.append)
    except BaseException:
        record.interrupted = True
        if current:
            record.levels.append(finish_level(current[0], plan))
        raise
    level = finish_level(raw, plan)
    record.levels.append(level)
    if on_level is not None:
        on_level(level)
    record.tiers = []
    for tier, verdict in zip(plan.tiers, level.verdicts, strict=True):
        result = TierResult(
            floor=tier.floor, ttft=tier.ttft, agents=level.agents if verdict.passed else 0,
            level=0, p25_speed=level.p25_speed, p95_ttft=level.p95_ttft, errors=level.errors,
            agent_share=verdict.agent_share, attainment=verdict.attainment,
            status="not measured" if verdict.inconclusive else "measured",
            reason=verdict.reason if verdict.inconclusive else "",
            cache_hit_ratio=level.fidelity.cache_counters
            if level.fidelity.cache_counters is not None else level.fidelity.cache_server,
        )
        p = level.power
        if p is not None and p.ok and p.mean_w and verdict.passed:
            result.mean_w = p.mean_w
            result.agents_per_mw = level.agents / (p.mean_w / 1e6)
            result.j_per_token = p.j_per_token
        record.tiers.append(result)
    return record
