"""A whole replay run: the search over levels, each measured once and judged against every tier,
then one answer per tier. The `Run` record is filled in place, so whoever holds it after a
cancellation (Ctrl-C) has every completed level plus the interrupted one, flagged `partial`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from replay import summary
from replay.clock import Clock
from replay.fleet import Fleet
from replay.level import Live, Raw, Timing, measure, power_summary
from replay.metrics import CacheCounters
from replay.power import Recorder
from replay.results import Level, Run, TierResult
from replay.search import Resolution, Search
from replay.tiers import Tier


@dataclass(frozen=True)
class Plan:
    """How to search: tiers, level timing, bounds and the failure threshold."""

    tiers: Sequence[Tier]
    timing: Timing
    max_agents: int = 1024
    resolution: Resolution = Resolution(relative=0.1)
    agents: int | None = None
    """Measure this one level instead of searching."""
    max_error_rate: float = 0.05


def finish_level(raw: Raw, plan: Plan) -> Level:
    """`raw` summarized: figures, verdicts, fidelity, J per token."""
    level = summary.fill(raw.level, raw.samples, plan.tiers,
                         max_error_rate=plan.max_error_rate, counters=raw.counters)
    p = level.power
    if p is not None and p.mean_w is not None and level.output_tokens:
        seconds = level.window_end - level.window_start
        p.j_per_token = p.mean_w * seconds / level.output_tokens
    return level


def answers(run: Run, search: Search, plan: Plan) -> list[TierResult]:
    """One `TierResult` per tier from the levels measured so far."""
    out: list[TierResult] = []
    by_agents = {lv.agents: i for i, lv in enumerate(run.levels) if not lv.partial}
    for t, tier in enumerate(plan.tiers):
        n = search.answer(t)
        lo, hi = search.bounds(t)
        res = TierResult(
            floor=tier.floor, ttft=tier.ttft, agents=n, capped=search.capped(t),
            resolved=hi is None or search.resolution.resolved(lo, hi) or plan.agents is not None,
        )
        i = by_agents.get(n)
        if i is not None:
            lv = run.levels[i]
            res.level = i
            res.p25_speed, res.p95_ttft = lv.p25_speed, lv.p95_ttft
            res.errors = lv.errors
            if lv.verdicts:
                res.agent_share = lv.verdicts[t].agent_share
                res.attainment = lv.verdicts[t].attainment
                res.inconclusive = lv.verdicts[t].inconclusive
            f = lv.fidelity
            res.cache_hit_ratio = (
                f.cache_counters if f.cache_counters is not None else f.cache_server
            )
            if lv.power is not None and lv.power.ok and lv.power.mean_w:
                res.mean_w = lv.power.mean_w
                res.agents_per_mw = n / (lv.power.mean_w / 1e6)
                res.j_per_token = lv.power.j_per_token
        out.append(res)
    return out


async def run(
    record: Run,
    fleet: Fleet,
    plan: Plan,
    *,
    epoch: int,
    clock: Clock,
    scale: float = 1.0,
    recorder: Recorder | None = None,
    counters: CacheCounters | None = None,
    on_tick: Callable[[Live], None] | None = None,
    on_level: Callable[[Level], None] | None = None,
) -> Run:
    """Search (or measure `plan.agents`) and fill `record` in place; `clock` is the fleet's."""
    search = Search(
        len(plan.tiers),
        max_agents=plan.max_agents if plan.agents is None else max(plan.agents, 1),
        resolution=plan.resolution,
        fixed=None if plan.agents is None else [plan.agents],
    )
    current: list[Raw] = []
    try:
        while (n := search.next()) is not None:
            current.clear()
            raw = await measure(
                fleet, index=len(record.levels), agents=n, timing=plan.timing, epoch=epoch,
                clock=clock, scale=scale, recorder=recorder, counters=counters, on_tick=on_tick,
                on_start=current.append,
            )
            current.clear()
            level = finish_level(raw, plan)
            record.levels.append(level)
            search.record(n, [v.passed for v in level.verdicts])
            record.tiers = answers(record, search, plan)
            if on_level is not None:
                on_level(level)
    except asyncio.CancelledError:
        record.interrupted = True
        if current:
            raw = current[0]
            try:
                now = clock.now()
                raw.samples.extend(await fleet.finish(now, 0.0))
            except Exception:  # noqa: BLE001 - keep what we have; the run is stopping anyway
                pass
            if recorder is not None:
                raw.level.power = power_summary(recorder, epoch, raw.level, scale)
            record.levels.append(finish_level(raw, plan))
        raise
    finally:
        record.tiers = answers(record, search, plan)
    return record
