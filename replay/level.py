"""Measure one level (N agents) the AA-AgentPerf way: staggered ramp-up, warm-up until the
completion rate is stable, a steady window, then a drain that lets the window's requests finish.

Warm-up ends, after at least `warmup_min` seconds past the ramp, once the completion rate of
the last `stable_span` seconds matches the span before it (`steady`), or at `warmup_max`,
flagged unstable. The window lasts `duration` seconds and is extended, up to
`max_window`, until `min_requests` of its requests have completed.
"""

from __future__ import annotations

import dataclasses
import time
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from replay.clock import Clock
from replay.fleet import Fleet
from replay.power import Recorder, window_mean
from replay.results import Level, Load, Power, Sample
from replay.scrapers import CacheCounters
from replay.summary import arrays, in_window


@dataclass(frozen=True)
class Timing:
    """Durations (seconds) of a level's phases."""

    duration: float = 120.0
    min_requests: int = 100
    max_window: float = 360.0
    ramp_per_agent: float = 0.5
    ramp_max: float = 30.0
    warmup_min: float = 30.0
    warmup_max: float = 300.0
    stable_span: float = 10.0
    stable_tolerance: float = 0.2
    drain: float = 60.0
    tick: float = 0.25

    def ramp(self, agents: int) -> float:
        return min(self.ramp_max, self.ramp_per_agent * max(0, agents - 1))

    def scaled(self, factor: float) -> Timing:
        """Every duration multiplied by `factor` (for a time-scaled simulated engine)."""
        return dataclasses.replace(
            self, duration=self.duration * factor, max_window=self.max_window * factor,
            ramp_per_agent=self.ramp_per_agent * factor, ramp_max=self.ramp_max * factor,
            warmup_min=self.warmup_min * factor, warmup_max=self.warmup_max * factor,
            stable_span=self.stable_span * factor, drain=self.drain * factor,
        )


FULL = Timing()
QUICK = Timing(
    duration=5.0, min_requests=10, max_window=8.0, ramp_per_agent=0.05, ramp_max=2.0,
    warmup_min=1.5, warmup_max=3.0, stable_span=1.0, drain=4.0,
)
"""Short windows for the quick start, in wall seconds (results are indicative only)."""

EARLY_STOP = 20
"""Finished requests a level needs before its error rate can stop it early."""

FIGURES_EVERY_S = 0.25
"""The live view's P25/P95 and requests in flight are recomputed at most this often, in wall
seconds (they cost the level's samples and agents; a forecast ticks far faster than a screen
refreshes). Display only: no result depends on them."""

QUICK_TIME_SCALE = 0.1
"""The simulated quick start runs the engine ten times faster than modelled, so its short wall
windows hold ten times more modelled time (and requests)."""


@dataclass
class Live:
    """What the progress view shows while a level runs."""

    level: int
    agents: int
    phase: str = "ramp"
    elapsed: float = 0.0
    completed: int = 0
    errors: int = 0
    inflight: int = 0
    p25_speed: float | None = None
    p95_ttft: float | None = None
    window_requests: int = 0


@dataclass
class Raw:
    """A level as measured, before summarizing."""

    level: Level
    samples: list[Sample] = field(default_factory=list)
    counters: float | None = None
    server: Load | None = None


def _count(ends: list[float], lo: float, hi: float) -> int:
    """How many of the sorted `ends` lie in [lo, hi)."""
    return bisect_left(ends, hi) - bisect_left(ends, lo)


def steady(a: int, b: int, tolerance: float) -> bool:
    """Whether completions counted over two equal spans show no trend: they differ by at most
    `tolerance` of the larger, or by no more than counting noise (two standard deviations
    of the difference of two Poisson counts), so a level of few agents is not called unstable
    for its lumpiness alone. Both spans must hold a completion."""
    return a > 0 and b > 0 and abs(a - b) <= max(tolerance * max(a, b), 2 * (a + b) ** 0.5)


def _live_figures(samples: list[Sample]) -> tuple[float | None, float | None]:
    _, speed, ttft = arrays(samples)
    sp, tt = speed[~np.isnan(speed)], ttft[~np.isnan(ttft)]
    return (
        float(np.percentile(sp, 25)) if sp.size else None,
        float(np.percentile(tt, 95)) if tt.size else None,
    )


async def measure(
    fleet: Fleet,
    *,
    index: int,
    agents: int,
    timing: Timing,
    epoch: int,
    clock: Clock,
    scale: float = 1.0,
    recorder: Recorder | None = None,
    counters: CacheCounters | None = None,
    on_tick: Callable[[Live], None] | None = None,
    on_start: Callable[[Raw], None] | None = None,
    max_error_rate: float = 1.0,
) -> Raw:
    """Run one level. `on_start` receives the `Raw` record that is filled as samples arrive,
    so a caller that is cancelled mid-level still holds what was measured (flagged
    `partial`, window cut at the cancellation). `timing` and every reported time are in
    reported seconds; `scale` wall seconds make one (see `Agent`). Every time is read from
    and waited on `clock` (the fleet's), so a level runs the same on virtual time. Once
    `EARLY_STOP` requests have finished and more than `max_error_rate` of them failed, the
    level stops at once: its window becomes everything since its start (`stopped` says why)."""

    def rel(ns: int) -> float:
        return (ns - epoch) / 1e9 / scale

    def ns(seconds: float) -> int:
        return epoch + int(seconds * scale * 1e9)

    t0 = clock.now() + int(0.05e9)
    ramp = timing.ramp(agents)
    started = rel(t0)
    level = Level(agents=agents, index=index, started=started, window_start=started,
                  window_end=started, warmup_s=0.0, stable=False, partial=True)
    raw = Raw(level=level)
    got = raw.samples
    if on_start is not None:
        on_start(raw)
    await fleet.begin(index, agents, t0, ramp * scale)
    live = Live(level=index, agents=agents)
    ramp_end = started + ramp
    measuring = False
    c0: dict[str, float] | None = None
    hard_end = window_end = 0.0
    # Kept up to date as samples arrive, so a tick costs its new samples, not the level's:
    failed = 0
    ends: list[float] = []  # end times of the successful samples, sorted (for `steady`)
    window_done = 0  # successful samples that started in the window
    shown = float("-inf")
    try:
        while True:
            await clock.sleep(timing.tick)
            new = fleet.take()
            got.extend(new)
            for s in new:
                if s.error:
                    failed += 1
                else:
                    insort(ends, s.end)
                    if measuring and s.start >= level.window_start:
                        window_done += 1
            now = rel(clock.now())
            live.elapsed = now - started
            if len(got) >= EARLY_STOP and failed / len(got) > max_error_rate:
                kinds = Counter(s.error for s in got if s.error).most_common(2)
                level.stopped = (
                    f"stopped early: {failed} of {len(got)} requests failed "
                    f"({', '.join(f'{k} ×{c}' for k, c in kinds)}), more than "
                    f"--max-error-rate {max_error_rate:.0%}")
                level.window_start, level.window_end = started, now
                break
            if not measuring:
                level.window_start = level.window_end = now
                warm = now - ramp_end
                live.phase = "ramp" if now < ramp_end else "warm-up"
                span = timing.stable_span
                if warm >= timing.warmup_min:
                    stable = steady(_count(ends, now - 2 * span, now - span),
                                    _count(ends, now - span, now), timing.stable_tolerance)
                    if stable or warm >= timing.warmup_max:
                        measuring = True
                        level.stable = stable
                        level.warmup_s = max(0.0, warm)
                        window_end = now + timing.duration
                        hard_end = now + max(timing.duration, timing.max_window)
                        window_done = sum(1 for s in got if s.start >= now and not s.error)
                        if counters is not None:
                            c0 = await counters.begin()
            else:
                live.phase = "window"
                level.window_end = now
                live.window_requests = window_done
                if now >= window_end and (window_done >= timing.min_requests
                                          or now >= hard_end):
                    break
            if on_tick is not None:
                live.completed = len(ends)
                live.errors = failed
                wall = time.monotonic()
                if wall - shown >= FIGURES_EVERY_S:  # display only: never in the results
                    shown = wall
                    live.inflight = fleet.inflight
                    recent = ([s for s in got if s.start >= level.window_start] if measuring
                              else [s for s in got if s.end >= now - 10.0])
                    live.p25_speed, live.p95_ttft = _live_figures(recent)
                on_tick(live)
    except BaseException:
        got.extend(fleet.take())
        raise
    if counters is not None:
        raw.server = await counters.end(c0)
        if raw.server is not None and scale != 1.0:  # per modelled second, like every figure
            for name in ("prompt_tps", "generation_tps"):
                if (rate := getattr(raw.server, name)) is not None:
                    setattr(raw.server, name, rate * scale)
        if raw.server is not None:
            raw.counters = raw.server.cache_hit_ratio
    live.phase = "drain"
    if on_tick is not None:
        on_tick(live)
    before = ns(level.window_end)
    got.extend(await fleet.finish(before, 0.0 if level.stopped else timing.drain * scale))
    level.partial = False
    done = sum(1 for s in in_window(got, level.window_start, level.window_end)
               if not s.error and not s.cut)
    level.short = done < timing.min_requests
    if recorder is not None:
        await recorder.reach(before)
        level.power = power_summary(recorder, epoch, level, scale)
    return raw


def power_summary(recorder: Recorder, epoch: int, level: Level, scale: float = 1.0) -> Power:
    """Mean power over `level`'s window from the recorder's readings (energy in reported
    seconds' terms: a time-scaled engine draws its modelled power over less wall time)."""
    a = epoch + int(level.window_start * scale * 1e9)
    b = epoch + int(level.window_end * scale * 1e9)
    wp = window_mean(recorder.between(a, b), a, b, max_gap_s=max(5.0, 4 * recorder.interval))
    energy = None if wp.energy_j is None else wp.energy_j / scale
    problem = wp.problem
    if recorder.last_error and (wp.mean_w is None or not wp.ok):
        # the read error names the cause (a missing metric, no GPU): say it first
        problem = f"{recorder.failures} reads failed, last: {recorder.last_error}" + (
            f" ({problem})" if problem else "")
    return Power(
        source=recorder.sampler.name, mode=wp.mode, mean_w=wp.mean_w, energy_j=energy,
        coverage=wp.coverage, readings=wp.readings, ok=wp.ok, problem=problem,
    )

