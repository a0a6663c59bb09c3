"""HTML reports: one self-contained page (inline CSS and SVG, no JavaScript, nothing fetched),
so it opens offline and can be mailed as a single file."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from replay import svg
from replay.html import page
from stats.profiles import Profile
from stats.report_text import FORMAT, published, seconds, share, tokens
from stats.report_text import ratio as ratio_text


def _badge(v: str) -> str:
    return f'<span class="verdict {escape(v)}">{escape(v)}</span>'


def _summary_table(rows: list[tuple[str, dict[str, Any], str]]) -> str:
    cols = ("n", "p10", "p50", "p90", "p99", "mean")
    out = ["<table><tr><th></th>", *(f"<th>{c}</th>" for c in cols), "</tr>"]
    for label, s, unit in rows:
        fmt = FORMAT.get(unit, tokens)
        cells = [f"{s['n']:,}", *(fmt(s[c]) for c in cols[1:])]
        out.append(
            f"<tr><td>{escape(label)}</td>"
            + "".join(f"<td>{escape(c)}</td>" for c in cells)
            + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


def _hist(
    title: str,
    xlabel: str,
    values: np.ndarray,
    log: bool = True,
    xfmt: Any = None,
    bins: int = 40,
) -> str:
    x, y = svg.histogram(values.astype(np.float64), log=log, bins=bins)
    chart = svg.Chart(
        title,
        xlabel,
        "share of values",
        xlog=log,
        ymin=0.0,
        series=[svg.Series("", x.tolist(), y.tolist())],
        yfmt=lambda v: f"{v * 100:.0f}%",
    )
    if xfmt:
        chart.xfmt = xfmt
    return svg.render(chart)


def _lru_chart(title: str, profiles: list[tuple[str, Profile]], cache_tokens: int | None) -> str:
    chart = svg.Chart(
        title,
        "cache capacity (tokens)",
        "hit ratio",
        xlog=True,
        ymin=0.0,
        ymax=1.0,
        yfmt=lambda v: f"{v * 100:.0f}%",
    )
    for i, (label, p) in enumerate(profiles):
        curve = p.lru.curve(points_per_octave=4)
        chart.series.append(
            svg.Series(label, [c for c, _ in curve], [r for _, r in curve], dashed=i > 0)
        )
        chart.hlines.append((p.hits.ratio, f"{label}: infinite {share(p.hits.ratio)}"))
    if cache_tokens:
        chart.vlines.append((float(cache_tokens), f"{tokens(cache_tokens)} tokens"))
    return svg.render(chart)


def _describe_one(p: Profile, d: dict[str, Any]) -> list[str]:
    c, tr, se, a = d["counts"], d["turn"], d["session"], d["arrivals"]
    out = [
        f"<h2>{escape(d['file'])}</h2>",
        f"<p>{escape(d['header']['domain'])} · {d['header']['block_size']}-token blocks · "
        f"{c['sessions']:,} sessions ({c['subagent_sessions']:,} sub-agents) · "
        f"{c['turns']:,} turns · prefix hit ratio (infinite cache) "
        f"<b>{share(d['prefix_hit_ratio'])}</b></p>",
    ]
    if d["damage"]:
        out.append(f'<p class="note">{escape(d["damage"])}</p>')
    out.append('<div class="charts">')
    t = p.turns
    out.append(_hist("Input tokens per turn", "tokens", t.input))
    out.append(_hist("Output tokens per turn", "tokens", t.output))
    out.append(_hist("New tokens per turn", "tokens (input minus inherited prefix)", t.new))
    out.append(_hist("Wait after tool calls", "seconds", t.waits("tool"), xfmt=seconds))
    growth = d["context_growth"]
    out.append(
        svg.render(
            svg.Chart(
                "Context growth: input tokens by turn number",
                "turn",
                "input tokens",
                series=[
                    svg.Series(
                        "median (band p10–p90)",
                        [g["turn"] for g in growth],
                        [g["p50"] for g in growth],
                        band=([g["p10"] for g in growth], [g["p90"] for g in growth]),
                    )
                ],
            )
        )
    )
    out.append(
        _lru_chart(
            "Prefix-cache hit ratio against cache size", [("LRU", p)], d["lru"]["capacity_tokens"]
        )
    )
    out.append(_hist("Turns per session", "turns", p.sessions.turns.astype(np.float64), bins=20))
    out.append(_hist("Final context per session", "tokens", p.sessions.final_context))
    ar = p.arrivals
    out.append(
        svg.render(
            svg.Chart(
                "Sessions open over time",
                "seconds since the first session",
                "sessions",
                series=[
                    svg.Series(
                        "open sessions", ar.sample_times.tolist(), ar.samples.tolist(), step=True
                    )
                ],
            )
        )
    )
    out.append("</div>")
    out.append(
        "<h3>Per turn</h3>"
        + _summary_table(
            [
                ("input tokens", tr["input"], "tokens"),
                ("output tokens", tr["output"], "tokens"),
                ("new tokens", tr["new"], "tokens"),
                ("reuse ratio", tr["reuse_ratio"], "ratio"),
                ("wait after tool", tr["wait"]["tool"], "s"),
                ("wait for user", tr["wait"]["user"], "s"),
                ("TTFT (observed)", tr["ttft"], "s"),
                ("output speed tok/s", tr["speed"], "tok/s"),
            ]
        )
    )
    out.append(
        "<h3>Per session</h3>"
        + _summary_table(
            [
                ("turns", se["turns"], "turns"),
                ("duration", se["duration"], "s"),
                ("final context", se["final_context"], "tokens"),
                ("tokens", se["tokens"], "tokens"),
                ("sub-agents", se["subagents"], "count"),
            ]
        )
    )
    out.append(
        f"<p>Arrivals: inter-arrival p50 {seconds(a['inter_arrival']['p50'])}, "
        f"concurrency max {a['concurrency']['max']}, "
        f"mean {a['concurrency']['mean']:.1f}.</p>"
    )
    return out


def describe(items: list[tuple[Profile, dict[str, Any]]]) -> str:
    """The HTML report of one or more described corpora (one section each)."""
    body: list[str] = []
    for p, d in items:
        body += _describe_one(p, d)
    return page("agentload · stats describe", body)


def _compare_chart(
    name: str, m: dict[str, Any], mine: Profile, theirs: Profile | None, values: Any
) -> str:
    unit = m["unit"]
    log = unit in ("tokens", "s", "turns")
    fmt = seconds if unit == "s" else (lambda v: f"{v * 100:.0f}%") if unit == "ratio" else None
    chart = svg.Chart(
        f"{m['label']}: cumulative share",
        unit,
        "share ≤ x",
        xlog=log,
        ymin=0.0,
        ymax=1.0,
        yfmt=lambda v: f"{v * 100:.0f}%",
    )
    if fmt:
        chart.xfmt = fmt
    x, y = svg.cdf(np.asarray(values(mine), dtype=np.float64))
    chart.series.append(svg.Series("yours", x.tolist(), y.tolist()))
    if theirs is not None:
        x, y = svg.cdf(np.asarray(values(theirs), dtype=np.float64))
        chart.series.append(svg.Series("reference", x.tolist(), y.tolist(), dashed=True))
    pub = m.get("published")
    if pub:
        for c in pub["checks"]:
            if c["check"] == "range":
                lo, hi = c["published"]
                chart.vspans.append((lo, hi, "published range"))
            elif c["check"] == "floor":
                chart.vlines.append((c["published"], f"AA: >{tokens(c['published'])}"))
            else:
                chart.vlines.append((c["published"], f"AA {c['check']}"))
    return svg.render(chart)


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _capacity(cap: dict[str, Any] | None, check: dict[str, Any] | None) -> list[str]:
    """The workload factor, why, and the buyer's checklist."""
    out: list[str] = []
    if cap:
        out.append(f"<h2>Workload factor</h2><p><b>{escape(cap['answer'])}</b></p>")
        out.append(
            "<table><tr><th>tier</th><th>your agents</th><th>agents/MW</th>"
            "<th>reference agents</th><th>agents/MW</th><th>factor (90 %)</th></tr>"
        )
        for t in cap["tiers"]:
            f = "–" if t["factor"] is None else f"{t['factor']:.2g}×"
            if t["low"] is not None and t["high"] is not None:
                f += f" ({t['low']:.2g}–{t['high']:.2g})"
            out.append(
                f"<tr><td>{t['floor']:g} tok/s · {t['ttft']:g} s</td>"
                f"<td>{t['yours']['agents']}</td><td>{_num(t['yours']['agents_per_mw'])}</td>"
                f"<td>{t['reference']['agents']}</td>"
                f"<td>{_num(t['reference']['agents_per_mw'])}</td><td>{f}</td></tr>"
            )
        out.append("</table>")
        if cap["why"]:
            out.append(
                "<h3>Why</h3><ul>"
                + "".join(f"<li>{escape(w['sentence'])}</li>" for w in cap["why"])
                + "</ul>"
            )
        out.append(f'<p class="muted">{escape(cap["interval"])}</p>')
        out += [f'<p class="note">{escape(n)}</p>' for n in cap["notes"]]
    if check:
        out.append("<h2>Buyer's checklist</h2>")
        if check["tiers"]:
            out.append(
                "<table><tr><th>tier</th><th>agents</th><th>P95 TTFT</th><th>J/session</th>"
                "<th>$/session</th><th>tok/s per MW</th><th>agents/MW GPU</th>"
                "<th>agents/MW facility</th></tr>"
            )
            for t in check["tiers"]:
                usd = "–" if t["usd_per_session"] is None else f"{t['usd_per_session']:.3g}"
                out.append(
                    f"<tr><td>{t['floor']:g} tok/s · {t['ttft']:g} s</td><td>{t['agents']}</td>"
                    f"<td>{seconds(t['p95_ttft'])}</td><td>{tokens(t['joules_per_session'])}</td>"
                    f"<td>{usd}</td><td>{tokens(t['tokens_per_s_per_mw'])}</td>"
                    f"<td>{_num(t['agents_per_mw_gpu'])}</td>"
                    f"<td>{_num(t['agents_per_mw_facility'])}</td></tr>"
                )
            out.append("</table>")
        m, tr, f = check["model_match"], check["trace_match"], check["facility_match"]
        models = ", ".join(f"{k} ×{v}" for k, v in m["your_models"].items())
        out.append(
            f"<p>Model match: the forecast assumes {escape(m['forecast_assumes'] or '–')}; "
            f"your corpus names {escape(models)}.</p>"
            f"<p>Trace match: {escape(tr['answer'] or 'no factor')}; verdict "
            f"{_badge(tr['verdict'])}.</p>"
            f"<p>Facility match: {escape(f['note'])}.</p>"
        )
    return out


def compare(comp: dict[str, Any], mine: Profile, theirs: Profile | None) -> str:
    """The HTML report of one comparison."""
    from stats.comparison import METRICS

    ref = comp["reference"]
    body = [
        f"<p><b>{escape(comp['file'])}</b> against <b>{escape(ref['name'])}</b>"
        + (f" ({escape(ref['corpus'])})" if ref["corpus"] else "")
        + "</p>",
        f"<p>Trace match: {_badge(comp['verdict'])}</p>",
    ]
    if ref["published"]:
        body.append(f'<p class="muted">Published figures: {escape(ref["published"]["source"])}</p>')
    body += _capacity(comp.get("capacity"), comp.get("checklist"))
    body += [f'<p class="note">{escape(n)}</p>' for n in comp.get("notes", []) + ref["notes"]]
    body.append(
        "<h2>What it means</h2><ul>"
        + "".join(f"<li>{escape(line)}</li>" for line in comp["implications"])
        + "</ul>"
    )
    body.append(
        "<h2>Metrics</h2><table><tr><th>metric</th><th>yours p50</th><th>ref p50</th>"
        "<th>yours p90</th><th>ref p90</th><th>KS</th><th>p50 ratio (90 %)</th>"
        "<th>AA published: yours vs AA</th><th>verdict</th></tr>"
    )
    for name, m in comp["metrics"].items():
        if name == "prefix_hit_ratio":
            body.append(
                f"<tr><td>{escape(m['label'])}</td><td>{share(m['yours'])}</td>"
                f"<td>{share(m['reference'])}</td><td></td><td></td><td></td><td></td>"
                f"<td></td><td>{_badge(m['verdict'])}</td></tr>"
            )
            continue
        fmt = FORMAT.get(m["unit"], tokens)
        r = m["reference"] or {}
        ks = "" if m["ks"] is None else f"{m['ks']:.2f}"
        ratio = ratio_text(m)
        body.append(
            f"<tr><td>{escape(m['label'])}</td><td>{fmt(m['yours']['p50'])}</td>"
            f"<td>{fmt(r.get('p50'))}</td><td>{fmt(m['yours']['p90'])}</td>"
            f"<td>{fmt(r.get('p90'))}</td><td>{ks}</td><td>{ratio}</td>"
            f'<td style="text-align:left">{escape(published(m, fmt))}</td>'
            f"<td>{_badge(m['verdict'])}</td></tr>"
        )
    body.append("</table>")
    body.append('<h2>Distributions</h2><div class="charts">')
    for metric in METRICS:
        if metric.name in comp["metrics"]:
            body.append(
                _compare_chart(
                    metric.name, comp["metrics"][metric.name], mine, theirs, metric.values
                )
            )
    pairs = [("yours", mine)] + ([("reference", theirs)] if theirs is not None else [])
    body.append(_lru_chart("Prefix-cache hit ratio against cache size", pairs, None))
    body.append("</div>")
    return page("agentload · stats compare", body)
