"""What a run is and why a tier's answer is what it is, in words a new user can act on (pure
over a `Run`).

A tier no level met is explained by the smallest level measured: when a single agent alone
misses the speed floor, more agents can only slow it, so no load meets the tier on this server.
"""

from __future__ import annotations

from replay.results import Level, Run, TierResult


def where(run: Run) -> str:
    """What the run measured: the simulated profile, the forecast's modelled topology, or the
    endpoint."""
    if run.forecast:
        topology = run.modelled.topology if run.modelled is not None else ""
        return f"forecast, {topology}" if topology else "forecast (modelled engine)"
    return f"simulated engine, profile {run.profile}" if run.simulated else run.endpoint


def kind(run: Run) -> str:
    """`simulated`, `forecast` or `live` (the badge every page carries)."""
    if run.forecast:
        return "forecast"
    return "simulated" if run.simulated else "live"


def _agents(n: int) -> str:
    return "a single agent" if n == 1 else f"{n} agents"


def _smallest_failing(run: Run, tier: int) -> Level | None:
    failed = [lv for lv in run.levels
              if not lv.partial and len(lv.verdicts) > tier and not lv.verdicts[tier].passed
              and not lv.verdicts[tier].inconclusive]
    return min(failed, key=lambda lv: lv.agents, default=None)


def why(run: Run, tier: int) -> str | None:
    """One line saying why tier `tier` got no agents or a bounded answer, else None."""
    r: TierResult = run.tiers[tier]
    if r.capped:
        top = run.settings.get("max_agents", r.agents)
        return f"met at every level up to --max-agents {top}: may serve more"
    if r.agents is None or r.status == "unresolved":  # the runner's own word on it
        return f"{r.status}: {r.reason or 'no answer'}"
    if r.agents > 0:
        return None
    lv = _smallest_failing(run, tier)
    if lv is None:
        return "no level was measured for this tier" if not run.levels else None
    v = lv.verdicts[tier]
    reason = v.reason or "missed the tier"
    speed = v.speed if v.speed is not None else lv.p25_speed
    if lv.agents == 1 and speed is not None and speed < r.floor:
        # one stream already misses the floor: more agents can only slow it down
        return (f"a single agent gets {speed:.0f} tok/s < {r.floor:.3g} (P{r.speed_pct:g}): "
                "no load can meet it")
    return f"not met even by {_agents(lv.agents)}: {reason}"


def hint(run: Run) -> str | None:
    """What to try when some tier is out of reach of a single stream on the simulated engine
    (the quick start): one line, or None."""
    if not run.simulated or run.forecast:
        return None
    lines = [why(run, i) or "" for i in range(len(run.tiers))]
    if not any(line.startswith("a single agent gets") for line in lines):
        return None
    other = "b200" if run.profile != "b200" else "h100"
    return f"tip: a floor is per stream; try --profile {other}, or --slo / --slo-preset"


def whys(run: Run) -> list[tuple[str, str]]:
    """(tier label, reason) for every tier that has one, in tier order."""
    out: list[tuple[str, str]] = []
    for i, r in enumerate(run.tiers):
        line = why(run, i)
        if line:
            out.append((label(r), line))
    return out


def cell(r: TierResult) -> str:
    """The agents figure as tables show it: `16`, `1024+` (passed at the largest level tried),
    `16?` (unresolved), `12–15` (an interval from --repeats), `not measured` (no answer)."""
    if r.agents is None:
        return "not measured"
    if r.capped:
        return f"{r.agents}+"
    if r.status == "unresolved":
        return f"{r.agents}?"
    if r.repeats > 1 and r.interval is not None and r.interval[1] is not None \
            and r.interval[1] > r.agents:
        return f"{r.agents}–{r.interval[1]}"
    return f"{r.agents}"


def label(r: TierResult) -> str:
    """The tier as the table names it: `60 tok/s, 5 s`."""
    return f"{r.floor:.3g} tok/s, {r.ttft:g} s"
