"""A whole replay run: the search over levels, each measured once and judged against every tier,
then one answer per tier. The `Run` record is filled in place, so whoever holds it after a
cancellation (Ctrl-C) has every completed level plus the interrupted one, flagged `partial`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from replay import bottleneck, summary
from replay.clock import Clock
from replay.fleet import Fleet
from replay.level import Live, Raw, Timing, measure, power_summary
from replay.power import Recorder
from replay.results import Level, Run, TierResult
from replay.scrapers import CacheCounters
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
    repeats: int = 1
    """Judge the levels either side of each tier's boundary this many times."""


def finish_level(raw: Raw, plan: Plan) -> Level:
    """`raw` summarized: figures, verdicts, fidelity, J per token."""
    level = summary.fill(raw.level, raw.samples, plan.tiers,
                         max_error_rate=plan.max_error_rate, counters=raw.counters)
    level.server = raw.server
    level.bottleneck = bottleneck.explain(level)
    p = level.power
    if p is not None and p.mean_w is not None and level.output_tokens:
        seconds = level.window_end - level.window_start
        p.j_per_token = p.mean_w * seconds / level.output_tokens
    return level


def _figures(res: TierResult, lv: Level, t: int) -> None:
    """Copy `lv`'s window figures for tier `t` into `res`."""
    res.p25_speed, res.p95_ttft = lv.p25_speed, lv.p95_ttft
    res.errors = lv.errors
    if lv.verdicts:
        v = lv.verdicts[t]
        res.agent_share = v.agent_share
        res.attainment = v.attainment
        if v.speed is not None or v.ttft_at is not None:  # the tier's own statistics
            res.p25_speed, res.p95_ttft = v.speed, v.ttft_at
    f = lv.fidelity
    res.cache_hit_ratio = f.cache_counters if f.cache_counters is not None else f.cache_server
    if res.agents and lv.power is not None and lv.power.ok and lv.power.mean_w:
        res.mean_w = lv.power.mean_w
        res.agents_per_mw = res.agents / (lv.power.mean_w / 1e6)
        res.j_per_token = lv.power.j_per_token


def _judged(run: Run, agents: int | None, t: int, passed: bool) -> int | None:
    """Index of the last complete level of `agents` that judged tier `t` as `passed`."""
    for i in range(len(run.levels) - 1, -1, -1):
        lv = run.levels[i]
        if (lv.agents == agents and not lv.partial and lv.verdicts
                and not lv.verdicts[t].inconclusive and lv.verdicts[t].passed == passed):
            return i
    return None


def _status(search: Search, t: int, plan: Plan, run: Run) -> tuple[str, str]:
    """(status, reason) of tier `t`; see `results.STATUSES`."""
    n = search.answer(t)
    lo, hi = search.bounds(t)
    failed = _judged(run, hi, t, False) if hi is not None else None
    why = f": {run.levels[failed].verdicts[t].reason}" if failed is not None else ""
    if n is None:
        if hi is not None:
            return "not measured", (
                f"the smallest level judged, {hi} agents, failed it{why}; no smaller level "
                "was measured" + (" (give a smaller --agents)" if plan.agents else ""))
        return "not measured", "no level could judge it (see the level notes)"
    if search.capped(t):
        if plan.agents is not None:
            return "at limit", f"passed at {n} agents, the only level measured"
        return "at limit", f"passed at --max-agents {search.max_agents}"
    if search.resolved(t):
        return "measured", "" if n else f"fails at 1 agent{why}"
    if hi is None:
        return "unresolved", f"passed at {n} agents; no larger level could judge it"
    return "unresolved", (f"between {n} and {hi} agents, wider than the resolution: the "
                          "levels in between could not judge it, or the run stopped")


def answers(run: Run, search: Search, plan: Plan) -> list[TierResult]:
    """One `TierResult` per tier from the levels measured so far. Only a level that judged
    a tier (complete, stable, enough completed requests) answers it; a tier without an answer
    carries the figures of the level that failed it, so its errors show."""
    out: list[TierResult] = []
    for t, tier in enumerate(plan.tiers):
        n = search.answer(t)
        status, reason = _status(search, t, plan, run)
        res = TierResult(
            floor=tier.floor, ttft=tier.ttft, speed_pct=tier.speed_pct, ttft_pct=tier.ttft_pct,
            limits=[limit.name for limit in tier.limits], agents=n, status=status, reason=reason,
            capped=search.capped(t), resolved=status in ("measured", "at limit"),
            interval=search.interval(t), repeats=search.judged(n, t) if n else 0,
        )
        i = _judged(run, n, t, True) if n else None
        if i is None:
            i = _judged(run, search.bounds(t)[1], t, False)
        else:
            res.level = i
        if i is not None:
            _figures(res, run.levels[i], t)
        out.append(res)
    return out


def longer(timing: Timing) -> Timing:
    """Twice the window, window limit and warm-up limit: for a level measured again because
    its first measurement could not judge any tier."""
    return dataclasses.replace(timing, duration=2 * timing.duration,
                               max_window=2 * timing.max_window,
                               warmup_max=2 * timing.warmup_max)


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
    before_level: Callable[[], Awaitable[None]] | None = None,
) -> Run:
    """Search (or measure `plan.agents`) and fill `record` in place; `clock` is the fleet's."""
    search = Search(
        len(plan.tiers),
        max_agents=plan.max_agents if plan.agents is None else max(plan.agents, 1),
        resolution=plan.resolution,
        fixed=None if plan.agents is None else [plan.agents],
        repeats=plan.repeats,
    )
    current: list[Raw] = []
    try:
        while (n := search.next()) is not None:
            current.clear()
            if before_level is not None:
                await before_level()  # e.g. a cold prefix cache (--reset-cache)
            timing = longer(plan.timing) if search.needs_longer(n) else plan.timing
            raw = await measure(
                fleet, index=len(record.levels), agents=n, timing=timing, epoch=epoch,
                clock=clock, scale=scale, recorder=recorder, counters=counters, on_tick=on_tick,
                on_start=current.append, max_error_rate=plan.max_error_rate,
            )
            current.clear()
            level = finish_level(raw, plan)
            record.levels.append(level)
            search.record(n, [None if v.inconclusive else v.passed for v in level.verdicts],
                          short=level.short and level.completed > 0 and not level.partial)
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
