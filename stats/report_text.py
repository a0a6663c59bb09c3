"""Terminal reports: rich renderables built from descriptions and comparisons (no printing)."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

COLUMNS = ("n", "p10", "p50", "p90", "p99", "mean")
COLOR = {"match": "green", "differs": "yellow", "far": "red"}


def tokens(x: float | None) -> str:
    """27,312 -> '27.3K'; 1_250_000 -> '1.25M'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    a = abs(x)
    if a >= 1e9:
        return f"{x / 1e9:.3g}B"
    if a >= 1e6:
        return f"{x / 1e6:.3g}M"
    if a >= 1e4:
        return f"{x / 1e3:.3g}K"
    if a >= 100 or float(x).is_integer():
        return f"{x:,.0f}"
    return f"{x:.3g}"


def seconds(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x >= 3600:
        return f"{x / 3600:.3g} h"
    if x >= 120:
        return f"{x / 60:.3g} min"
    return f"{x:.3g} s"


def share(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x * 100:.1f} %"


FORMAT = {
    "tokens": tokens,
    "s": seconds,
    "ratio": share,
    "turns": tokens,
    "tok/s": tokens,
    "count": tokens,
}


def _row(label: str, summ: dict[str, Any], unit: str) -> list[str]:
    fmt = FORMAT.get(unit, tokens)
    return [label, f"{summ['n']:,}", *(fmt(summ[c]) for c in COLUMNS[1:])]


def _dist_table(title: str, rows: list[tuple[str, dict[str, Any], str]]) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False)
    t.add_column("")
    for c in COLUMNS:
        t.add_column(c, justify="right")
    for label, summ, unit in rows:
        t.add_row(*_row(label, summ, unit))
    return t


def describe(d: dict[str, Any]) -> RenderableType:
    """The terminal summary of one description."""
    c, h, tr, se = d["counts"], d["header"], d["turn"], d["session"]
    head = Text.assemble(
        (d["file"], "bold"),
        f"  {h['domain']} · {h['tokenizer']} · {h['block_size']}-token blocks · "
        f"{c['sessions']:,} sessions ({c['subagent_sessions']:,} sub-agents) · "
        f"{c['turns']:,} turns · {tokens(c['input_tokens'])} in / "
        f"{tokens(c['output_tokens'])} out",
    )
    parts: list[RenderableType] = [head]
    if d["damage"]:
        parts.append(Text(f"warning: {d['damage']}", style="yellow"))
    parts.append(
        _dist_table(
            "Per turn",
            [
                ("input tokens", tr["input"], "tokens"),
                ("output tokens", tr["output"], "tokens"),
                ("new tokens", tr["new"], "tokens"),
                ("reuse ratio", tr["reuse_ratio"], "ratio"),
                ("wait after tool", tr["wait"]["tool"], "s"),
                ("wait for user", tr["wait"]["user"], "s"),
                ("wait at start", tr["wait"]["start"], "s"),
                ("TTFT (observed)", tr["ttft"], "s"),
                ("output speed tok/s", tr["speed"], "tok/s"),
            ],
        )
    )
    if tr["stop"]:
        stops = ", ".join(f"{k} {v:,}" for k, v in tr["stop"].items())
        parts.append(Text(f"stop reasons: {stops}"))
    parts.append(
        _dist_table(
            "Per session",
            [
                ("turns", se["turns"], "turns"),
                ("duration", se["duration"], "s"),
                ("final context", se["final_context"], "tokens"),
                ("input tokens", se["input"], "tokens"),
                ("output tokens", se["output"], "tokens"),
                ("tokens", se["tokens"], "tokens"),
                ("sub-agents", se["subagents"], "count"),
            ],
        )
    )
    parts.append(_cache(d))
    a = d["arrivals"]
    ia = a["inter_arrival"]
    parts.append(
        Text(
            f"arrivals: {c['sessions']:,} sessions over {seconds(a['span'])}; inter-arrival "
            f"p50 {seconds(ia['p50'])}, p90 {seconds(ia['p90'])}; concurrency max "
            f"{a['concurrency']['max']}, mean {a['concurrency']['mean']:.1f}"
        )
    )
    for note in d["notes"]:
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


def _cache(d: dict[str, Any]) -> RenderableType:
    lru = d["lru"]
    t = Table(title="Prefix cache", title_justify="left", show_edge=False)
    t.add_column("cache")
    t.add_column("hit ratio", justify="right")
    t.add_row("infinite", share(d["prefix_hit_ratio"]))
    if lru["capacity_tokens"] is not None:
        t.add_row(
            f"LRU {tokens(lru['capacity_tokens'])} tokens", share(lru["hit_ratio"]), style="bold"
        )
    # the part of the curve where something happens: from the last capacity under 1 % up
    curve = lru["curve"]
    low = [i for i, pt in enumerate(curve) if (pt["hit_ratio"] or 0) < 0.01]
    curve = curve[low[-1] if low else 0 :]
    step = max(1, -(-len(curve) // 8))
    for point in curve[::step]:
        t.add_row(f"LRU {tokens(point['capacity_tokens'])} tokens", share(point["hit_ratio"]))
    t.caption = f"LRU reaches the infinite ratio at {tokens(lru['saturation_tokens'])} tokens"
    return t


def _verdict(v: str) -> Text:
    return Text(v, style=f"bold {COLOR.get(v, 'white')}")


SHORT = {
    "input": "input / turn",
    "output": "output / turn",
    "new": "new / turn",
    "reuse_ratio": "reuse share",
    "tool_wait": "tool wait",
    "user_wait": "user wait",
    "turns": "turns / session",
    "final_context": "final context",
    "session_tokens": "tokens / session",
    "prefix_hit_ratio": "prefix hits",
}


def published(m: dict[str, Any], fmt: Any) -> str:
    """One line of a metric's published checks: yours vs the published figure."""
    pub = m.get("published")
    if not pub:
        return ""
    bits = []
    for c in pub["checks"]:
        if c["check"] == "range":
            lo, hi = c["published"]
            bits.append(f"{share(c['share_within'])} in {fmt(lo)}–{fmt(hi)}")
        elif c["check"] == "floor":
            bits.append(f"max {fmt(c['yours_max'])} vs >{fmt(c['published'])}")
        else:
            bits.append(f"{c['check']} {fmt(c['yours'])} vs {fmt(c['published'])}")
    return "; ".join(bits)


def ratio(m: dict[str, Any]) -> str:
    """yours ÷ reference with its interval: '5.4× (4.8–6.0)'; points for the hit ratio."""
    if "difference" in m:
        lo, hi = m.get("difference_interval") or (None, None)
        iv = f" ({lo * 100:+.1f} to {hi * 100:+.1f})" if lo is not None and hi is not None else ""
        return f"{m['difference'] * 100:+.1f} pts{iv}"
    r = m.get("median_ratio")
    if r is None:
        return ""
    lo, hi = m.get("median_ratio_interval") or (None, None)
    iv = f" ({lo:.2g}–{hi:.2g})" if lo is not None and hi is not None else ""
    return f"{r:.2g}×{iv}"


def _verdict_text(v: str) -> Text:
    return _verdict("too few sessions to judge" if v == "too-few" else v)


def _tier_name(t: dict[str, Any]) -> str:
    return f"{t['floor']:g} tok/s · {t['ttft']:g} s"


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "–" if x is None else format(x, fmt)


def capacity(c: dict[str, Any]) -> list[RenderableType]:
    """The workload factor: per tier, the sentence, and why (largest effect first)."""
    t = Table(title=f"Workload factor — {c['engine']}", title_justify="left", show_edge=False)
    for col in ("tier", "yours", "agents/MW", "reference", "agents/MW", "factor (90 %)"):
        t.add_column(col, justify="left" if col == "tier" else "right")
    for tier in c["tiers"]:
        y, r = tier["yours"], tier["reference"]
        f = tier["factor"]
        iv = (
            f" ({tier['low']:.2g}–{tier['high']:.2g})"
            if tier["low"] is not None and tier["high"] is not None
            else ""
        )
        t.add_row(
            _tier_name(tier),
            str(y["agents"]),
            _num(y["agents_per_mw"]),
            str(r["agents"]),
            _num(r["agents_per_mw"]),
            "–" if f is None else f"{f:.2g}×{iv}",
        )
    out: list[RenderableType] = [t, Text(c["answer"], style="bold")]
    if c["why"]:
        out.append(Text("why (agents/MW with the reference's feature instead of yours):"))
        out += [Text(f"• {w['sentence']}") for w in c["why"]]
    out.append(Text(c["interval"], style="dim"))
    out += [Text(f"note: {n}", style="yellow") for n in c["notes"]]
    return out


def checklist(c: dict[str, Any]) -> list[RenderableType]:
    """The buyer's checklist."""
    out: list[RenderableType] = []
    if c["tiers"]:
        t = Table(
            title=f"Buyer's checklist — your agents, forecast on {c['gpus']} GPU(s)",
            title_justify="left",
            show_edge=False,
        )
        cols = ["tier", "agents", "P95 TTFT", "J/session"]
        if c["usd_per_gpu_hour"] is not None:
            cols.append("$/session")
        cols += ["tok/s per MW", "agents/MW GPU", "agents/MW facility"]
        for col in cols:
            t.add_column(col, justify="left" if col == "tier" else "right")
        for tier in c["tiers"]:
            row = [
                _tier_name(tier),
                f"{tier['agents']}{'+' if tier['capped'] else ''}",
                seconds(tier["p95_ttft"]),
                tokens(tier["joules_per_session"]),
            ]
            if c["usd_per_gpu_hour"] is not None:
                usd = tier["usd_per_session"]
                row.append("–" if usd is None else f"{usd:.3g}")
            row += [
                tokens(tier["tokens_per_s_per_mw"]),
                _num(tier["agents_per_mw_gpu"]),
                _num(tier["agents_per_mw_facility"]),
            ]
            t.add_row(*row)
        out.append(t)
    else:
        out.append(Text("buyer's checklist: no forecast, so no capacity figures (see the notes)"))
    m, tr, f = c["model_match"], c["trace_match"], c["facility_match"]
    models = ", ".join(f"{k} ×{v}" for k, v in m["your_models"].items())
    out.append(
        Text(f"model match: forecast assumes {m['forecast_assumes'] or '–'}; your corpus: {models}")
    )
    factor = (
        f"factor {tr['factor']:.2g}× ({tr['low']:.2g}–{tr['high']:.2g})"
        if tr["factor"] is not None and tr["low"] is not None
        else "no factor"
    )
    out.append(Text(f"trace match: {factor}; verdict {tr['verdict']}"))
    out.append(
        Text(
            f"facility match: PUE {f['pue']:g}, {f['node_watts']:,.0f} W per "
            f"{f['gpus_per_node']}-GPU node — {f['note']}"
        )
    )
    return out


def compare(d: dict[str, Any]) -> RenderableType:
    """The terminal summary of one comparison (columns only for what the reference has): the
    workload factor and the buyer's checklist first when present, then metric by metric."""
    ref = d["reference"]
    metrics = d["metrics"]
    has_ref = any(m.get("reference") is not None for m in metrics.values())
    has_pub = any(m.get("published") for m in metrics.values())
    t = Table(show_edge=False)
    cols = ["metric", "yours p50"]
    if has_ref:
        cols += ["ref p50", "yours ÷ ref (90 %)", "KS"]
    if has_pub:
        cols.append("AA published: yours vs AA")
    cols.append("verdict")
    for col in cols:
        t.add_column(col, justify="left" if col[0] in "mA" else "right", overflow="fold")
    for name, m in metrics.items():
        label = SHORT.get(name, name)
        if name == "prefix_hit_ratio":
            row = [label, share(m["yours"])]
            if has_ref:
                row += [share(m["reference"]), ratio(m), ""]
        else:
            fmt = FORMAT.get(m["unit"], tokens)
            y, r = m["yours"], m["reference"] or {}
            row = [label, fmt(y["p50"])]
            if has_ref:
                ks = "" if m["ks"] is None else f"{m['ks']:.2f}"
                row += [fmt(r.get("p50")), ratio(m), ks]
        if has_pub:
            row.append(published(m, FORMAT.get(m["unit"], tokens)) if name in SHORT else "")
        t.add_row(*row, _verdict("too few" if m["verdict"] == "too-few" else m["verdict"]))
    sessions = d.get("sessions")
    lead: list[RenderableType] = []
    if d.get("capacity"):
        lead += capacity(d["capacity"])
    if d.get("checklist"):
        lead += checklist(d["checklist"])
    parts: list[RenderableType] = [
        *lead,
        Text.assemble(
            (d["file"], "bold"),
            f" ({sessions:,} sessions)" if sessions is not None else "",
            "  vs  ",
            (ref["name"], "bold"),
            f" ({ref['corpus']})" if ref["corpus"] and ref["corpus"] != ref["name"] else "",
        ),
    ]
    parts += [Text(f"note: {n}", style="yellow") for n in d.get("notes", [])]
    parts += [Text(f"reference: {n}", style="yellow") for n in ref["notes"]]
    parts.append(t)
    if d["skipped"]:
        skipped = "; ".join(f"{SHORT.get(k, k)} ({v})" for k, v in d["skipped"].items())
        parts.append(Text(f"not compared: {skipped}", style="dim"))
    parts.append(Text.assemble("trace match: ", _verdict_text(d["verdict"])))
    parts += [Text(f"• {line}") for line in d["implications"]]
    return Group(*parts)
