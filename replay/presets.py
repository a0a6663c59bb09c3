"""Named SLO tier tables with their sources (`--slo-preset NAME`), and building the tiers of a
run from the command line's SLO options (preset, `--slo`, `--slo-stat`, `--slo-limit`,
`--task-slo`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from replay import slo
from replay.errors import ConfigError
from replay.tiers import Tier
from replay.tiers import parse as parse_tier


@dataclass(frozen=True)
class Preset:
    name: str
    tiers: tuple[tuple[float, float], ...]
    """(speed floor tok/s, TTFT ceiling s) per tier."""
    speed_pct: float
    ttft_pct: float
    source: str
    caveat: str = ""
    short: str = ""
    """One line for the run's notes."""


AA_SOURCE = "AA-AgentPerf methodology, https://artificialanalysis.ai/methodology/agentperf"
MLPERF_SOURCE = ("MLPerf Inference LoadGen settings, mlcommons/inference loadgen/mlperf.conf "
                 "(Server scenario: target_latency_percentile = 99; TTFT and TPOT ceilings)")

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "aa-v4-pro", ((20, 10), (60, 5), (180, 3)), 25, 95,
        f"{AA_SOURCE}: DeepSeek V4 Pro; 20 tok/s with TTFT ≤ 10 s is published, the other "
        "tiers span AA's range up to 180 tok/s",
        "the 60 and 180 tok/s TTFT ceilings and the P25/P95 statistics are this tool's "
        "approximation: AA does not publish them",
        "AA-AgentPerf's DeepSeek V4 Pro tiers (20 tok/s with TTFT ≤ 10 s is published; the "
        "other ceilings and P25/P95 are approximations)",
    ),
    Preset(
        "aa-v3.2", ((30, 15), (100, 15), (300, 15)), 25, 95,
        f"{AA_SOURCE}: DeepSeek V3.2 example tiers, 30/100/300 tok/s with TTFT ≤ 15 s",
        "the P25/P95 statistics are this tool's approximation: AA does not publish them",
        "AA-AgentPerf's DeepSeek V3.2 example tiers (P25/P95 are approximations)",
    ),
    Preset(
        "mlperf-interactive",
        ((12.5, 4.5), (25, 0.45), (1000 / 30, 0.5), (1000 / 15, 1.5)), 1, 99,
        f"{MLPERF_SOURCE}: the interactive LLM benchmarks' P99 TPOT and P99 TTFT ceilings, "
        "as speed floors (1 / TPOT): llama3_1-405b 80 ms / 4.5 s, llama2-70b 40 ms / 450 ms, "
        "llama3_1-8b 30 ms / 500 ms, deepseek-r1 15 ms / 1.5 s",
        "MLPerf's ceilings were set for its own datasets' prompts (a few thousand tokens), "
        "not agent contexts of tens of thousands",
        "MLPerf Inference's interactive LLM ceilings (P99 TTFT, P99 TPOT as speed)",
    ),
    Preset(
        "mlperf-server",
        ((1000 / 200, 2), (1000 / 175, 6), (1000 / 100, 2), (1000 / 80, 2)), 1, 99,
        f"{MLPERF_SOURCE}: the server LLM benchmarks' P99 TPOT and P99 TTFT ceilings, as speed "
        "floors (1 / TPOT): llama2-70b 200 ms / 2 s, llama3_1-405b 175 ms / 6 s, "
        "llama3_1-8b 100 ms / 2 s, deepseek-r1 80 ms / 2 s",
        "MLPerf's ceilings were set for its own datasets' prompts, not agent contexts",
        "MLPerf Inference's server LLM ceilings (P99 TTFT, P99 TPOT as speed)",
    ),
)}
DEFAULT = "aa-v4-pro"


def lookup(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"--slo-preset {name!r}: expected one of {', '.join(PRESETS)} "
                          "('replay --slo-preset list' shows them with their sources)") from None


@dataclass(frozen=True)
class Choice:
    """The tiers a run judges with, and the notes that say where they come from."""

    tiers: list[Tier]
    notes: list[str]
    settings: dict[str, object]


def choose(
    *, preset: str | None = None, slo_specs: Sequence[str] = (), stat: str | None = None,
    limits: Sequence[str] = (), task: str | None = None,
) -> Choice:
    """`--slo` tiers replace the preset's (the default preset is AA's V4 Pro table);
    `--slo-stat` replaces its statistics; `--slo-limit` and `--task-slo` add constraints to
    every tier."""
    p = lookup(preset or DEFAULT)
    stats = {"speed": p.speed_pct, "ttft": p.ttft_pct, "task": slo.DEFAULT_STATS["task"]}
    if stat:
        stats.update(slo.parse_stats(stat))
    extra = [slo.parse_limit(s) for s in limits]
    if task:
        extra.append(slo.parse_task(task, stats["task"]))
    pairs = ([(t.floor, t.ttft) for t in (parse_tier(s) for s in slo_specs)] if slo_specs
             else list(p.tiers))
    tiers = [Tier(f, c, speed_pct=stats["speed"], ttft_pct=stats["ttft"], limits=tuple(extra))
             for f, c in pairs]
    notes = []
    if not slo_specs:
        notes.append(f"tiers: {p.name}, {p.short}; 'replay presets' cites the sources")
    elif not stat and (stats["speed"], stats["ttft"]) == (25.0, 95.0):
        notes.append("statistics: P25 speed and P95 TTFT approximate AA-AgentPerf, which does "
                     "not publish its percentiles (--slo-stat changes them)")
    settings: dict[str, object] = {
        "slo_preset": None if slo_specs else p.name,
        "slo_stat": f"speed=p{stats['speed']:g},ttft=p{stats['ttft']:g}",
        "slo_limits": [limit.name for limit in extra],
    }
    return Choice(tiers=tiers, notes=notes, settings=settings)


def describe() -> list[str]:
    """Every preset in a few lines, for `--slo-preset list`."""
    out = []
    for p in PRESETS.values():
        tiers = ", ".join(f"{f:.3g} tok/s · {c:g} s" for f, c in p.tiers)
        out.append(f"{p.name}{' (default)' if p.name == DEFAULT else ''}: P{p.speed_pct:g} "
                   f"speed, P{p.ttft_pct:g} TTFT: {tiers}")
        out.append(f"  source: {p.source}")
        if p.caveat:
            out.append(f"  caveat: {p.caveat}")
    return out
