"""The workload factor: the trace match answered in capacity.

factor (per SLO tier) = agents per MW of your corpus ÷ agents per MW of the reference coding
workload, both forecast on the same modelled engine by a `Forecaster` (replay's virtual-time
forecast; tests use fakes behind the protocol).

- Interval: `halves` times, half of each corpus's top-level sessions (with their sub-agents) are
  drawn without replacement and both halves forecast again. For half-samples of n sessions the
  spread of an estimate around the full-sample one is about the full sample's own sampling
  spread (σ²(1/(n/2) − 1/n) = σ²/n), so the 90 % interval is the factor ± 1.645 × the RMS
  deviation of the half-sample factors from it. It covers session sampling and the search's
  resolution, not the engine model's own error (the forecast states that).
- Why: a model of your sessions is fitted (`corpus.synth.fit`) and generated; then one feature
  at a time (input length, new tokens per turn, prefix reuse, output length, waits, turns,
  sub-agents) is replaced by the reference's and the corpus forecast again. A feature's effect
  is agents/MW with the reference's feature ÷ agents/MW with yours: above 1, that feature of
  your workload costs capacity. Features are ranked by how far their effect is from 1.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from corpus import ops, synth

Z90 = 1.645
HALVES = 4
SYNTH_SESSIONS = 24  # sessions per generated corpus of the sensitivity forecasts

# feature -> (plain words, the `corpus.synth.Model` fields it swaps, the compared metrics it
# explains)
FEATURES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "input": (
        "input length (first request, shared prompt, context limit)",
        ("first_input", "families", "max_input"),
        ("input", "final_context"),
    ),
    "new": ("new tokens per turn", ("new",), ("new",)),
    "reuse": ("prefix reuse (context kept turn to turn)", ("extend", "kept"), ("reuse_ratio",)),
    "output": ("output length", ("output",), ("output",)),
    "waits": (
        "waits between turns (tools, users)",
        ("tool_wait", "user_wait", "user_share"),
        ("tool_wait", "user_wait"),
    ),
    "turns": ("turns per session", ("turns",), ("turns", "session_tokens")),
    "subagents": ("sub-agents", ("subagents", "sub"), ()),
}


@dataclass(frozen=True)
class Capacity:
    """One forecast tier: the most agents that met it and what they cost."""

    floor: float
    ttft: float
    agents: int
    agents_per_mw: float | None = None
    mean_w: float | None = None
    j_per_token: float | None = None
    p25_speed: float | None = None
    p95_ttft: float | None = None
    capped: bool = False


@dataclass(frozen=True)
class Forecast:
    """What a forecaster found for one corpus."""

    engine: str  # one line: what was modelled (topology, engine profile, "forecast")
    gpus: int
    tiers: tuple[Capacity, ...]
    notes: tuple[str, ...] = ()


class Forecaster(Protocol):
    """Forecasts the capacity of a corpus on one modelled engine setup."""

    @property
    def engine(self) -> str: ...

    def __call__(self, corpus: Path) -> Forecast: ...


def factor(mine: Capacity, ref: Capacity) -> float | None:
    """agents/MW of yours ÷ the reference's at one tier; None when either has none."""
    a, b = mine.agents_per_mw, ref.agents_per_mw
    if a is None or b is None or b <= 0:
        return None
    return a / b


@dataclass(frozen=True)
class Tier:
    """The factor at one tier, with its interval and both forecasts."""

    floor: float
    ttft: float
    factor: float | None
    low: float | None
    high: float | None
    yours: Capacity
    reference: Capacity

    def json(self) -> dict[str, Any]:
        return {
            "floor": self.floor,
            "ttft": self.ttft,
            "factor": self.factor,
            "low": self.low,
            "high": self.high,
            "yours": vars(self.yours),
            "reference": vars(self.reference),
        }


@dataclass(frozen=True)
class Effect:
    """What one feature does to your capacity at the headline tier."""

    feature: str
    label: str
    effect: float | None  # agents/MW with the reference's feature ÷ with yours
    metrics: tuple[str, ...]

    def sentence(self) -> str:
        e = self.effect
        if e is None:
            return f"{self.label}: no tier was met either way"
        if abs(math.log(e)) < math.log(1.05):
            return f"{self.label}: hardly matters (the reference's would give {e:.2f}×)"
        if e > 1:
            return (
                f"{self.label}: yours costs capacity — with the reference's, your agents "
                f"would get {e:.2f}× the agents per MW"
            )
        return (
            f"{self.label}: yours helps — with the reference's, your agents would get only "
            f"{e:.2f}× the agents per MW"
        )


@dataclass
class Answer:
    """The workload factor per tier, why, and what it rests on."""

    engine: str
    reference: str
    tiers: list[Tier]
    effects: list[Effect] = field(default_factory=list)
    halves: int = 0
    notes: list[str] = field(default_factory=list)
    yours: Forecast | None = None
    theirs: Forecast | None = None

    @property
    def headline(self) -> Tier | None:
        """The first tier with a factor (tiers go from the loosest)."""
        return next((t for t in self.tiers if t.factor is not None), None)

    def sentence(self) -> str:
        h = self.headline
        if h is None:
            return (
                f"on {self.engine}, no SLO tier was met by both workloads, so there is no "
                "factor; try a larger engine setup or looser tiers"
            )
        assert h.factor is not None
        rng = (
            f" (range {h.low:.2g}–{h.high:.2g})" if h.low is not None and h.high is not None else ""
        )
        return (
            f"on {self.engine}, your agents get ≈ {h.factor:.2g}× the agents per MW of the "
            f"AgentPerf coding set{rng} at {h.floor:g} tok/s and P95 TTFT ≤ {h.ttft:g} s"
        )

    def json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "reference": self.reference,
            "forecast": True,
            "answer": self.sentence(),
            "tiers": [t.json() for t in self.tiers],
            "why": [
                {
                    "feature": e.feature,
                    "label": e.label,
                    "effect": e.effect,
                    "metrics": list(e.metrics),
                    "sentence": e.sentence(),
                }
                for e in self.effects
            ],
            "interval": (
                f"90 % interval from {self.halves} half-samples of sessions of both corpora "
                "(session sampling and search resolution; not the engine model's own error)"
                if self.halves
                else "no interval (no half-samples were forecast)"
            ),
            "notes": list(self.notes),
        }


def _interval(full: float | None, halves: list[float | None]) -> tuple[float | None, float | None]:
    got = [h for h in halves if h is not None]
    if full is None or not got:
        return None, None
    rms = math.sqrt(sum((h - full) ** 2 for h in got) / len(got))
    return max(0.0, full - Z90 * rms), full + Z90 * rms


def _top_level_sessions(path: Path) -> int:
    from corpus import Reader

    return int((Reader(path).table().sessions["parent"] < 0).sum())


def _half(src: Path, out: Path, seed: int) -> Path:
    n = _top_level_sessions(src)
    ops.sample(src, out, n=max(1, n // 2), seed=seed, keys=False)
    return out


Progress = Callable[[str], None]


def workload_factor(
    mine: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    forecaster: Forecaster,
    *,
    reference_model: synth.Model | None = None,
    reference_name: str = "coding",
    halves: int = HALVES,
    why: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> Answer:
    """The workload factor of the corpus `mine` against the `reference` corpus on the engine
    of `forecaster` (module docstring); `reference_model` is the reference's session model for
    the sensitivity (default: fitted to `reference`)."""
    step = progress or (lambda _m: None)
    mine_p, ref_p = Path(mine), Path(reference)
    step(f"forecasting {mine_p.name}")
    yours = forecaster(mine_p)
    step(f"forecasting the reference {reference_name}")
    theirs = forecaster(ref_p)
    full = [factor(a, b) for a, b in zip(yours.tiers, theirs.tiers, strict=True)]
    samples: list[list[float | None]] = [[] for _ in full]
    with tempfile.TemporaryDirectory(prefix="agentload-factor-") as tmp:
        work = Path(tmp)
        for i in range(halves):
            step(f"half-sample {i + 1} of {halves}")
            ha = forecaster(_half(mine_p, work / f"mine-{i}.zst", seed + i))
            hb = forecaster(_half(ref_p, work / f"ref-{i}.zst", seed + 1000 + i))
            for k, (x, y) in enumerate(zip(ha.tiers, hb.tiers, strict=True)):
                samples[k].append(factor(x, y))
        tiers = []
        for k, (a, b) in enumerate(zip(yours.tiers, theirs.tiers, strict=True)):
            lo, hi = _interval(full[k], samples[k]) if halves else (None, None)
            tiers.append(Tier(a.floor, a.ttft, full[k], lo, hi, a, b))
        answer = Answer(
            engine=forecaster.engine,
            reference=reference_name,
            tiers=tiers,
            halves=halves,
            notes=list(dict.fromkeys([*yours.notes, *theirs.notes])),
            yours=yours,
            theirs=theirs,
        )
        if why:
            ref_model = reference_model or synth.fit(ref_p)
            answer.effects = sensitivity(
                mine_p, ref_model, forecaster, answer, work, seed=seed, progress=step
            )
    return answer


def sensitivity(
    mine: Path,
    ref_model: synth.Model,
    forecaster: Forecaster,
    answer: Answer,
    work: Path,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Effect]:
    """One `Effect` per feature at the headline tier, largest first (module docstring)."""
    step = progress or (lambda _m: None)
    head = answer.headline
    at = answer.tiers.index(head) if head is not None else 0
    model = synth.fit(mine)
    n = min(SYNTH_SESSIONS, max(1, _top_level_sessions(mine)))

    def apmw(m: synth.Model, name: str) -> float | None:
        out = work / f"{name}.zst"
        synth.generate(m, out, n=n, seed=seed)
        return forecaster(out).tiers[at].agents_per_mw

    step("why: forecasting a model of your sessions")
    base = apmw(model, "base")
    effects = []
    for name, (label, fields, metrics) in FEATURES.items():
        step(f"why: your sessions with the reference's {label}")
        swapped = model.with_(**{f: getattr(ref_model, f) for f in fields})
        got = apmw(swapped, f"swap-{name}")
        effect = got / base if got is not None and base else None
        effects.append(Effect(name, label, effect, metrics))
    return sorted(effects, key=lambda e: -abs(math.log(e.effect)) if e.effect else 0.0)
