"""A replay run as one offline HTML page a buyer can show: per level P25 speed, P95 TTFT,
throughput, power and cache hits against agents with the tier lines and the boundary the
search found; the per-agent view; fidelity; the load over time; every note and setting.

Pure: a `Run` in, HTML text out (inline SVG, no JavaScript, nothing fetched).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from html import escape

import msgspec
import numpy as np

from replay import slo, svg
from replay.compare import Comparison, texts
from replay.explain import cell, kind, label, where, why
from replay.html import page, table
from replay.progress import legend, notes
from replay.results import Level, Run
from replay.summary import arrays, in_window

CSS = """
.badge{font-weight:700;padding:1px 7px;border-radius:3px;color:#fff;background:#7b52ab}
.badge.live{background:#2a9d4b}.badge.forecast{background:#e8731a}.why{color:#8a6d00;text-align:left}
.notes li{margin:2px 0}
"""


def _f(value: float | None, fmt: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{unit}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def measured(run: Run) -> list[Level]:
    return sorted((lv for lv in run.levels if not lv.partial), key=lambda lv: lv.agents)


def throughput(level: Level) -> float | None:
    """Output tokens per second over the level's steady window."""
    span = level.window_end - level.window_start
    return level.output_tokens / span if span > 0 and level.requests else None


def cache_ratio(level: Level) -> float | None:
    f = level.fidelity
    return f.cache_counters if f.cache_counters is not None else f.cache_server


def _vs_agents(
    run: Run,
    title: str,
    ylabel: str,
    value: Callable[[Level], float | None],
    *,
    ylog: bool = False,
    ymin: float | None = None,
    ymax: float | None = None,
    yfmt: Callable[[float], str] | None = None,
    hlines: Sequence[tuple[float, str]] = (),
    extra: Sequence[svg.Series] = (),
) -> str:
    levels = measured(run)
    xs = [float(lv.agents) for lv in levels]
    ys = [np.nan if (v := value(lv)) is None else float(v) for lv in levels]
    chart = svg.Chart(title, "agents (concurrent sessions)", ylabel, xlog=True, ylog=ylog,
                      series=[svg.Series("measured levels", xs, ys, markers=True), *extra],
                      hlines=list(hlines), ymin=ymin, ymax=ymax)
    if yfmt is not None:
        chart.yfmt = yfmt
    chart.vlines = [(float(r.agents), f"{r.floor:g} tok/s: {r.agents}")
                    for r in run.tiers if r.agents]
    return svg.render(chart)


def _ratio(v: float) -> str:
    return f"{v * 100:.0f}%"


def level_charts(run: Run) -> list[str]:
    """The figures against agents, each with the tiers' lines and the boundaries found."""
    floors = [(r.floor, f"{r.floor:g} tok/s") for r in run.tiers]
    ceilings = [(r.ttft, f"TTFT ≤ {r.ttft:g} s") for r in run.tiers]
    levels = measured(run)
    ideal = svg.Series("ideal (infinite cache)", [float(lv.agents) for lv in levels],
                       [np.nan if lv.fidelity.cache_ideal is None else lv.fidelity.cache_ideal
                        for lv in levels], dashed=True)
    return [
        _vs_agents(run, "P25 output speed per request", "tokens/s", lambda lv: lv.p25_speed,
                   hlines=floors),
        _vs_agents(run, "P95 time to first token", "seconds", lambda lv: lv.p95_ttft,
                   ylog=True, hlines=ceilings),
        _vs_agents(run, "Throughput (steady window)", "output tokens/s", throughput),
        _vs_agents(run, "Mean power (steady window)", "watts",
                   lambda lv: lv.power.mean_w if lv.power is not None else None),
        _vs_agents(run, "Prefix-cache hits seen by the server", "share of prompt tokens",
                   cache_ratio, yfmt=_ratio, extra=[ideal], ymin=0.0, ymax=1.0),
        _vs_agents(run, "Errors", "share of window requests", lambda lv: lv.error_rate,
                   yfmt=_ratio, ymin=0.0,
                   ymax=max([0.1, *(lv.error_rate for lv in levels)])),
    ]


def limit_charts(run: Run) -> list[str]:
    """Each further constraint (`--slo-limit`, `--task-slo`) against agents, with its bound
    (the figure is the same for every tier, so the first tier's verdicts carry it)."""
    out = []
    for name in run.tiers[0].limits if run.tiers else []:
        limit = slo.from_name(name)
        if limit is None:
            continue
        metric = slo.METRICS[limit.metric]

        def value(lv: Level, name: str = name) -> float | None:
            return lv.verdicts[0].limits.get(name) if lv.verdicts else None

        out.append(_vs_agents(run, f"{name} ({metric.name})", metric.unit, value,
                              hlines=[(limit.bound, name)]))
    return out


SERVER_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("running_mean", "Requests running (server)", "requests"),
    ("waiting_mean", "Requests waiting (server)", "requests"),
    ("kv_usage_mean", "KV-cache usage (server)", "share of the KV cache"),
    ("generation_tps", "Generation tokens/s (server)", "tokens/s"),
    ("prompt_tps", "Prompt tokens/s (server)", "tokens/s"),
    ("gpu_util_mean", "GPU utilisation", "percent"),
)
"""Per-level figures from the server's own /metrics (`Level.server`), when it reported them."""


def _server(level: Level) -> dict[str, object]:
    return {} if level.server is None else msgspec.structs.asdict(level.server)


def server_charts(run: Run) -> list[str]:
    """The server's own view of each level, against agents (only figures it reported)."""
    levels = measured(run)
    found = [_server(lv) for lv in levels]
    out = []
    for key, title, ylabel in SERVER_FIGURES:
        if not any(isinstance(f.get(key), int | float) for f in found):
            continue
        out.append(_vs_agents(run, title, ylabel, functools.partial(_number, key=key),
                              yfmt=_ratio if key == "kv_usage_mean" else None, ymin=0.0))
    return out


def _number(level: Level, key: str) -> float | None:
    value = _server(level).get(key)
    return float(value) if isinstance(value, int | float) else None


def agent_speeds(level: Level) -> np.ndarray:
    """Each agent's own P25 output speed over the level's window (NaN-free)."""
    agent, speed, _ = arrays(in_window(level.samples, level.window_start, level.window_end))
    out = []
    for a in np.unique(agent):
        s = speed[(agent == a) & ~np.isnan(speed)]
        if s.size:
            out.append(float(np.percentile(s, 25)))
    return np.array(out, dtype=np.float64)


def _spread(levels: list[Level], n: int) -> list[Level]:
    """Up to `n` levels evenly spread from the smallest to the largest."""
    if len(levels) <= n:
        return levels
    picks = np.linspace(0, len(levels) - 1, n).round().astype(int)
    return [levels[i] for i in dict.fromkeys(picks.tolist())]


def agent_charts(run: Run) -> list[str]:
    """The per-agent view: the share of agents meeting each tier, and how agents' own P25
    speeds spread at each level."""
    levels = measured(run)
    xs = [float(lv.agents) for lv in levels]
    share = svg.Chart("Agents whose own requests met the tier", "agents (concurrent sessions)",
                      "share of agents", xlog=True, ymin=0.0, ymax=1.0, yfmt=_ratio)
    for t, r in enumerate(run.tiers):
        ys = [np.nan if len(lv.verdicts) <= t or lv.verdicts[t].agent_share is None
              else float(lv.verdicts[t].agent_share or 0.0) for lv in levels]
        share.series.append(svg.Series(label(r), xs, ys, markers=True))
    curves = [(lv, *svg.cdf(agent_speeds(lv))) for lv in _spread(levels, 4)]
    top = max((float(x.max()) for _, x, _ in curves if x.size), default=0.0)
    spread = svg.Chart("Each agent's P25 output speed (CDF per level)", "tokens/s",
                       "share of agents", ymin=0.0, ymax=1.0, yfmt=_ratio,
                       vlines=[(r.floor, f"{r.floor:g} tok/s") for r in run.tiers
                               if r.floor <= 1.5 * top])
    for lv, x, y in curves:
        if x.size:
            name = f"{lv.agents} agent{'s' if lv.agents != 1 else ''}"
            spread.series.append(svg.Series(name, x.tolist(), y.tolist(), step=True,
                                            markers=x.size <= 3))
    return [svg.render(share), svg.render(spread)]


def delivered(a: np.ndarray, b: np.ndarray, tokens: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Tokens delivered by each time in `at`, each request's `tokens` spread evenly over
    [a, b) (all at `a` when b ≤ a): Σ r·(min(t, b) − a)⁺ with r = tokens ÷ (b − a), from
    prefix sums over the sorted starts and ends, so a million requests cost a sort, not a
    loop."""
    at = np.asarray(at, dtype=np.float64)
    instant = b <= a
    r = np.where(instant, 0.0, tokens / np.where(instant, 1.0, b - a))

    def ramp(points: np.ndarray) -> np.ndarray:  # Σ_{p < t} r·(t − p)
        order = np.argsort(points)
        p, w = points[order], r[order]
        cw, cwp = np.concatenate(([0.0], np.cumsum(w))), np.concatenate(([0.0], np.cumsum(w * p)))
        k = np.searchsorted(p, at, side="left")
        return at * cw[k] - cwp[k]

    steps = np.sort(a[instant])
    done = np.concatenate(([0.0], np.cumsum(tokens[instant][np.argsort(a[instant])])))
    return ramp(a) - ramp(b) + done[np.searchsorted(steps, at, side="right")]


def time_charts(run: Run, buckets: int = 120) -> list[str]:
    """The load over the run, from the raw samples: output tokens/s, requests in flight and
    TTFT by start time, with each level's steady window shaded."""
    samples = [s for lv in run.levels for s in lv.samples]
    if not samples:
        return []
    start = np.array([s.start for s in samples])
    end = np.array([s.end for s in samples])
    first = np.array([s.first for s in samples])
    out_tokens = np.array([s.output for s in samples], dtype=np.float64)
    t0, t1 = float(start.min()), float(end.max())
    edges = np.linspace(t0, t1, buckets + 1)
    mid = ((edges[:-1] + edges[1:]) / 2).tolist()
    width = (t1 - t0) / buckets or 1.0
    rate = np.diff(delivered(np.where(first > 0, first, end), end, out_tokens, edges))
    order_s, order_e = np.sort(start), np.sort(end)
    inflight = (np.searchsorted(order_s, mid, side="right")
                - np.searchsorted(order_e, mid, side="right")).astype(float).tolist()
    spans = [(lv.window_start, lv.window_end, f"level {lv.index + 1}: {lv.agents} agents window")
             for lv in run.levels]
    tokens = svg.Chart("Output tokens/s over the run", "run time (s)", "tokens/s",
                       series=[svg.Series("", mid, (rate / width).tolist())], vspans=spans)
    flight = svg.Chart("Requests in flight", "run time (s)", "requests",
                       series=[svg.Series("", mid, inflight, step=True)], vspans=spans)
    ok = first > 0
    which = np.clip(np.searchsorted(edges, start[ok], side="right") - 1, 0, buckets - 1)
    waited = (first - start)[ok]
    p95 = [float(np.percentile(waited[which == b], 95)) if np.any(which == b) else np.nan
           for b in range(buckets)]
    ttft = svg.Chart("P95 time to first token by request start", "run time (s)", "seconds",
                     ylog=True, vspans=spans, series=[svg.Series("", mid, p95, step=True)])
    return [svg.render(tokens), svg.render(flight), svg.render(ttft)]


def tier_table(run: Run) -> str:
    rows = []
    for i, r in enumerate(run.tiers):
        rows.append(
            f"<tr><td>{escape(label(r))}</td><td><b>{escape(cell(r))}</b></td>"
            f"<td>{_f(r.agents_per_mw, ',.0f')}</td><td>{_f(r.mean_w, ',.0f', ' W')}</td>"
            f"<td>{_f(r.j_per_token, '.2f')}</td><td>{_f(r.p25_speed, '.1f')}</td>"
            f"<td>{_f(r.p95_ttft, '.2f', ' s')}</td><td>{_pct(r.cache_hit_ratio)}</td>"
            f"<td>{r.errors}</td><td>{_pct(r.agent_share)}</td>"
            f'<td class="why">{escape("; ".join(r.limits))}</td>'
            f'<td class="why">{escape(why(run, i) or "")}</td></tr>'
        )
    sp, tp = (run.tiers[0].speed_pct, run.tiers[0].ttft_pct) if run.tiers else (25.0, 95.0)
    head = (f"tier (P{sp:g} tok/s, P{tp:g} TTFT)", "agents", "agents per MW", "mean power",
            "J/token", f"P{sp:g} tok/s", f"P{tp:g} TTFT", "cache hits", "errors", "per-agent",
            "further constraints", "")
    return ("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
            + "".join(rows) + "</table>")


def level_table(run: Run) -> str:
    head = ("level", "agents", "window", "requests", "errors", "P25 tok/s", "P50 tok/s",
            "P50 TTFT", "P95 TTFT", "tokens/s", "mean W", "J/token", "tiers", "flags")
    rows: list[tuple[str, ...]] = []
    for lv in run.levels:
        marks = " ".join(("?" if v.inconclusive else "✓" if v.passed else "✗") + f"{v.floor:g}"
                         for v in lv.verdicts)
        flags = ", ".join(f for f, on in (("short", lv.short), ("unstable", not lv.stable),
                                          ("partial", lv.partial)) if on)
        p = lv.power
        cells = (str(lv.index + 1), str(lv.agents),
                 f"{lv.window_end - lv.window_start:.0f} s", str(lv.requests), str(lv.errors),
                 _f(lv.p25_speed, ".1f"), _f(lv.p50_speed, ".1f"), _f(lv.p50_ttft, ".2f", " s"),
                 _f(lv.p95_ttft, ".2f", " s"), _f(throughput(lv), ",.0f"),
                 _f(p.mean_w if p else None, ",.0f"), _f(p.j_per_token if p else None, ".2f"),
                 marks, flags)
        rows.append(cells)
    return table(head, rows)


def fidelity_table(run: Run) -> str:
    head = ("level", "agents", "input server ÷ recorded", "worst input", "output received ÷ "
            "asked", "exact outputs", "cache (server)", "cache (ideal)", "lag P50", "lag P95",
            "lag max")
    rows: list[tuple[str, ...]] = []
    for lv in run.levels:
        f = lv.fidelity
        cells = (str(lv.index + 1), str(lv.agents), _f(f.input_ratio, ".3f"),
                 _pct(f.input_max_dev), _f(f.output_ratio, ".3f"), _pct(f.output_exact_share),
                 _pct(cache_ratio(lv)), _pct(f.cache_ideal), _f(f.lag_p50, ".3f", " s"),
                 _f(f.lag_p95, ".3f", " s"), _f(f.lag_max, ".3f", " s"))
        rows.append(cells)
    return table(head, rows)


def _settings(run: Run) -> str:
    items = {"endpoint": run.endpoint, "api": run.api, "model": run.model,
             "corpus": f"{run.corpus.path} ({run.corpus.domain}, {run.corpus.sessions} sessions, "
                       f"{run.corpus.turns} turns)",
             "power source": run.power_source, "time scale": f"{run.time_scale:g}",
             "seed": str(run.seed), "run tag": run.run_tag}
    items.update({k: str(v) for k, v in run.settings.items() if not isinstance(v, dict)})
    return ("<table>" + "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>"
                                for k, v in items.items()) + "</table>")


def render(run: Run) -> str:
    """The whole report for `run`."""
    k = kind(run)
    body = [
        f'<p><span class="badge {k}">{escape(k)}</span> {escape(run.corpus.path)} on '
        f"{escape(where(run))} · {escape(run.api)} · model {escape(run.model)} · "
        f"{len(run.levels)} level{'s' if len(run.levels) != 1 else ''} measured</p>",
        "<h2>Agents per SLO tier</h2>",
        '<p class="muted">A tier is met when the steady window\'s P25 per-request output speed '
        "is at least its floor and its P95 time to first token at most its ceiling; "
        "“per-agent” is the share of agents whose own requests met it. Agents per MW use "
        "GPU power only.</p>",
        tier_table(run),
        '<ul class="notes muted">', *(f"<li>{escape(line)}</li>" for line in legend(run)),
        "</ul>",
        '<h2>Levels against agents</h2><p class="muted">Dots are measured levels; dashed '
        "horizontal lines are the tiers; vertical lines are the most agents each tier allowed."
        '</p><div class="charts">', *level_charts(run), "</div>",
        *(['<h2>Further constraints</h2><div class="charts">', *charts, "</div>"]
          if (charts := limit_charts(run)) else []),
        "<h2>Per-agent view</h2><div class=\"charts\">", *agent_charts(run), "</div>",
        '<h2>Load over time</h2><p class="muted">From the raw requests; shaded spans are the '
        'steady windows.</p><div class="charts">', *time_charts(run), "</div>",
        *(['<h2>Server metrics</h2><p class="muted">The server\'s own /metrics over each '
           'steady window.</p><div class="charts">', *charts, "</div>"]
          if (charts := server_charts(run)) else []),
        "<h2>Levels</h2>", level_table(run),
        '<h2>Fidelity</h2><p class="muted">Did the server see what the corpus recorded?</p>',
        fidelity_table(run),
        "<h2>Notes</h2><ul class=\"notes\">",
        *(f'<li class="note">{escape(n)}</li>' for n in notes(run)),
        "</ul><h2>Settings</h2>", _settings(run),
    ]
    return page(f"agentload · replay · {k}", body, CSS)


def comparison(comp: Comparison, runs: Sequence[Run]) -> str:
    """Runs side by side: the tier table with ratios to the first run, the settings that
    differ, and each run's level curves on shared axes."""
    head = ["tier", *(f"{n} agents" for n in comp.names), *(f"{n} agents/MW"
                                                          for n in comp.names)]
    rows = []
    for row in comp.rows:
        agents, per_mw = texts(row)
        rows.append([row.tier, *agents, *per_mw])
    body = [
        "<p>" + " · ".join(f'<b>{escape(n)}</b> <span class="badge {escape(k)}">{escape(k)}'
                           f"</span> {escape(where(r))}, {escape(r.model)}"
                           for n, k, r in zip(comp.names, comp.kinds, runs, strict=True))
        + "</p>",
        "<h2>Agents per SLO tier</h2>",
        f'<p class="muted">Ratios (×) are to {escape(comp.names[0])}.</p>',
        table(head, rows),
        "<h2>Settings that differ</h2>",
        table(["setting", *comp.names], [[d.setting, *d.values] for d in comp.differences])
        if comp.differences else '<p class="muted">none: the runs used the same settings</p>',
        '<h2>Levels against agents</h2><div class="charts">',
    ]
    for title, ylabel, value, ylog in (
        ("P25 output speed per request", "tokens/s", lambda lv: lv.p25_speed, False),
        ("P95 time to first token", "seconds", lambda lv: lv.p95_ttft, True),
        ("Throughput (steady window)", "output tokens/s", throughput, False),
        ("Mean power (steady window)", "watts",
         lambda lv: lv.power.mean_w if lv.power is not None else None, False),
    ):
        chart = svg.Chart(title, "agents (concurrent sessions)", ylabel, xlog=True, ylog=ylog)
        for name, run in zip(comp.names, runs, strict=True):
            levels = measured(run)
            chart.series.append(svg.Series(
                name, [float(lv.agents) for lv in levels],
                [np.nan if (v := value(lv)) is None else float(v) for lv in levels],
                markers=True))
        body.append(svg.render(chart))
    body.append("</div>")
    if comp.notes:
        body += ["<h2>Notes</h2><ul class=\"notes\">",
                 *(f'<li class="note">{escape(n)}</li>' for n in comp.notes), "</ul>"]
    return page("agentload · replay compare", body, CSS)
