"""Runs side by side (two systems, live vs forecast, before vs after a server change): per tier
the agents and agents per MW of every run and their ratios to the first run, and the settings
that differ between the runs. Pure over `Run` records; the CLI prints, `report_html` draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from replay.explain import kind, label, where
from replay.results import Run, TierResult

SCHEMA = "agentload.replay.compare/1"


class Cell(msgspec.Struct, kw_only=True):
    """One run's answer for one tier (None where that run did not have the tier)."""

    agents: int | None = None
    capped: bool = False
    resolved: bool = True
    agents_per_mw: float | None = None
    agents_ratio: float | None = None
    """This run's agents ÷ the first run's (None when either is missing or the first is 0)."""
    per_mw_ratio: float | None = None


class Row(msgspec.Struct, kw_only=True):
    tier: str
    floor: float
    ttft: float
    runs: list[Cell]


class Difference(msgspec.Struct, kw_only=True):
    setting: str
    values: list[str]


class Comparison(msgspec.Struct, kw_only=True):
    schema: str = SCHEMA
    names: list[str]
    kinds: list[str]
    """simulated, forecast or live, per run."""
    rows: list[Row]
    differences: list[Difference]
    notes: list[str] = []


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _key(r: TierResult) -> tuple[float, float, float, float, tuple[str, ...]]:
    """Tiers are the same only with the same bounds, statistics and further limits."""
    return (r.floor, r.ttft, r.speed_pct, r.ttft_pct, tuple(r.limits))


def _name(r: TierResult) -> str:
    stats = "" if (r.speed_pct, r.ttft_pct) == (25.0, 95.0) else (
        f" · P{r.speed_pct:g}/P{r.ttft_pct:g}")
    return label(r) + stats + "".join(f" · {limit}" for limit in r.limits)


def _flat(run: Run) -> dict[str, str]:
    """Every setting that shapes a result, as text (nested settings dotted)."""
    out = {
        "measured": where(run), "kind": kind(run), "api": run.api, "model": run.model,
        "corpus": run.corpus.path, "power source": run.power_source,
        "time scale": f"{run.time_scale:g}", "short windows": str(run.short_windows),
        "seed": str(run.seed),
    }

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:  # unset, None and empty read alike (runs saved before a setting existed)
            out[prefix] = "—" if value is None or value == [] else str(value)

    walk("", run.settings)
    return out


def differences(runs: Sequence[Run]) -> list[Difference]:
    """Settings whose values are not the same in every run (missing counts as a value)."""
    flats = [_flat(r) for r in runs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    out = []
    for k in keys:
        values = [f.get(k, "—") for f in flats]
        if len(set(values)) > 1:
            out.append(Difference(setting=k, values=values))
    return out


def compare(runs: Sequence[Run], names: Sequence[str]) -> Comparison:
    """Tiers in first-seen order across the runs; ratios are to the first run."""
    if len(runs) < 2:
        raise ValueError("compare needs at least two runs")
    tiers: dict[tuple[float, float, float, float, tuple[str, ...]], TierResult] = {}
    for run in runs:
        for t in run.tiers:
            tiers.setdefault(_key(t), t)
    rows = []
    for key, tier in tiers.items():
        found = [{_key(t): t for t in run.tiers}.get(key) for run in runs]
        base = found[0]
        cells = []
        for got in found:
            if got is None:
                cells.append(Cell())
                continue
            cells.append(Cell(
                agents=got.agents, capped=got.capped,
                resolved=got.resolved, agents_per_mw=got.agents_per_mw,
                agents_ratio=None if base is None else _ratio(got.agents, base.agents),
                per_mw_ratio=None if base is None else _ratio(got.agents_per_mw,
                                                              base.agents_per_mw),
            ))
        rows.append(Row(tier=_name(tier), floor=tier.floor, ttft=tier.ttft, runs=cells))
    notes = []
    kinds = [kind(r) for r in runs]
    if len(set(kinds)) > 1:
        notes.append("the runs are of different kinds (" + ", ".join(
            f"{n}: {k}" for n, k in zip(names, kinds, strict=True)) + "): a simulated or "
            "forecast figure is a model, not a measurement")
    if any(r.short_windows for r in runs):
        notes.append("short windows in " + ", ".join(
            n for n, r in zip(names, runs, strict=True) if r.short_windows)
            + ": indicative only")
    if any(r.interrupted for r in runs):
        notes.append("interrupted: " + ", ".join(
            n for n, r in zip(names, runs, strict=True) if r.interrupted))
    return Comparison(names=list(names), kinds=kinds, rows=rows,
                      differences=differences(runs), notes=notes)


def texts(row: Row) -> tuple[list[str], list[str]]:
    """A row's agents and agents-per-MW cells as tables show them, ratios to the first run
    after every other run's figure: `24 1.50×`."""
    agents, per_mw = [], []
    for i, c in enumerate(row.runs):
        a = "—" if c.agents is None else (
            f"{c.agents}{'+' if c.capped else ''}{'' if c.resolved else ' ?'}")
        m = "—" if c.agents_per_mw is None else f"{c.agents_per_mw:,.0f}"
        if i and c.agents_ratio is not None:
            a += f" {c.agents_ratio:.2f}×"
        if i and c.per_mw_ratio is not None:
            m += f" {c.per_mw_ratio:.2f}×"
        agents.append(a)
        per_mw.append(m)
    return agents, per_mw


def dumps(comparison: Comparison) -> bytes:
    return msgspec.json.format(msgspec.json.encode(comparison), indent=1)
