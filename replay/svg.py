"""Small inline-SVG charts (no JavaScript, no external files): line charts and histograms
on linear or logarithmic axes. Pure functions from numbers to SVG text. Shared by replay's
run report and stats' corpus reports (stats may import replay, never the reverse)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np

W, H = 640, 270
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 44
PALETTE = ("#1f6fb4", "#e8731a", "#2a9d4b", "#b8392f", "#7b52ab")


@dataclass(frozen=True)
class Scale:
    lo: float
    hi: float
    log: bool
    a: float  # pixel range
    b: float

    def __call__(self, x: float) -> float:
        if self.log:
            x, lo, hi = math.log10(max(x, 1e-300)), math.log10(self.lo), math.log10(self.hi)
        else:
            lo, hi = self.lo, self.hi
        f = 0.5 if hi == lo else (x - lo) / (hi - lo)
        return self.a + f * (self.b - self.a)

    def ticks(self) -> list[float]:
        if self.log:
            k0, k1 = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            mult = (1, 2, 5) if k1 - k0 <= 3 else (1,)
            out = [m * 10.0**k for k in range(k0, k1 + 1) for m in mult]
            return [t for t in out if self.lo <= t <= self.hi]
        span = self.hi - self.lo
        if span <= 0:
            return [self.lo]
        raw = span / 5
        mag = 10 ** math.floor(math.log10(raw))
        step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
        first = math.ceil(self.lo / step) * step
        n = int(math.floor((self.hi - first) / step + 1e-9)) + 1
        return [first + i * step for i in range(n)]


def _fmt(x: float) -> str:
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:g}M"
    if a >= 1e3:
        return f"{x / 1e3:g}K"
    if a and a < 0.01:
        return f"{x:.0e}"
    return f"{x:.3g}"


@dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]
    step: bool = False
    dashed: bool = False
    band: tuple[Sequence[float], Sequence[float]] | None = None  # (y_lo, y_hi) filled
    markers: bool = False
    """A dot at every point (measured levels), with the point's value as its tooltip."""


@dataclass
class Chart:
    """One chart: series on shared axes, plus vertical and horizontal reference lines."""

    title: str
    xlabel: str
    ylabel: str
    xlog: bool = False
    ylog: bool = False
    ymin: float | None = None
    ymax: float | None = None
    series: list[Series] = field(default_factory=list)
    vlines: list[tuple[float, str]] = field(default_factory=list)
    hlines: list[tuple[float, str]] = field(default_factory=list)
    vspans: list[tuple[float, float, str]] = field(default_factory=list)
    xfmt: Callable[[float], str] = _fmt
    yfmt: Callable[[float], str] = _fmt


def _finite_pairs(
    xs: Sequence[float], ys: Sequence[float], xlog: bool, ylog: bool
) -> list[tuple[float, float]]:
    return [
        (float(x), float(y))
        for x, y in zip(xs, ys, strict=True)
        if math.isfinite(x) and math.isfinite(y) and (not xlog or x > 0) and (not ylog or y > 0)
    ]


def render(chart: Chart) -> str:
    """The chart as an <svg> element."""
    pts = [_finite_pairs(s.x, s.y, chart.xlog, chart.ylog) for s in chart.series]
    xs = [p[0] for ps in pts for p in ps] + [v for v, _ in chart.vlines]
    xs += [v for lo, hi, _ in chart.vspans for v in (lo, hi)]
    ys = [p[1] for ps in pts for p in ps] + [v for v, _ in chart.hlines]
    for s in chart.series:
        if s.band:
            ys += [float(v) for v in (*s.band[0], *s.band[1]) if math.isfinite(v)]
    if chart.xlog:
        xs = [x for x in xs if x > 0]
    if chart.ylog:
        ys = [y for y in ys if y > 0]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="{escape(chart.title)}">',
        f'<text x="{LEFT}" y="18" class="title">{escape(chart.title)}</text>',
    ]
    if not xs or not ys:
        out.append(
            f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="muted">no data</text></svg>'
        )
        return "".join(out)
    xlo, xhi = min(xs), max(xs)
    ylo = chart.ymin if chart.ymin is not None else min(ys)
    yhi = chart.ymax if chart.ymax is not None else max(ys)
    if not chart.ylog and chart.ymin is None:
        ylo = min(0.0, ylo)
    if xhi == xlo:
        xlo, xhi = (xlo / 2, xhi * 2) if chart.xlog else (xlo - 1, xhi + 1)
    if yhi == ylo:
        ylo, yhi = (ylo / 2, yhi * 2) if chart.ylog else (ylo - 1, yhi + 1)
    sx = Scale(xlo, xhi, chart.xlog, LEFT, W - RIGHT)
    sy = Scale(ylo, yhi, chart.ylog, H - BOTTOM, TOP)
    # axes and grid
    for t in sy.ticks():
        y = sy(t)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(chart.yfmt(t))}</text>"
        )
    for t in sx.ticks():
        x = sx(t)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}" class="grid"/>'
            f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
            f"{escape(chart.xfmt(t))}</text>"
        )
    out.append(
        f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" '
        f'class="axis"/><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" '
        f'class="axis"/>'
    )
    out.append(
        f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" text-anchor="middle" '
        f'class="label">{escape(chart.xlabel)}</text>'
    )
    out.append(
        f'<text transform="translate(14 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle" class="label">{escape(chart.ylabel)}</text>'
    )
    for lo, hi, label in chart.vspans:
        a, b = sx(max(lo, xlo)), sx(min(hi, xhi))
        out.append(
            f'<rect x="{a:.1f}" y="{TOP}" width="{max(b - a, 0):.1f}" '
            f'height="{H - BOTTOM - TOP}" class="span"><title>{escape(label)}</title>'
            "</rect>"
        )
    for i, s in enumerate(chart.series):
        color = PALETTE[i % len(PALETTE)]
        if s.band:
            band = _finite_pairs(s.x, s.band[0], chart.xlog, chart.ylog)
            top = _finite_pairs(s.x, s.band[1], chart.xlog, chart.ylog)
            if band and top:
                poly = [(sx(x), sy(y)) for x, y in band] + [(sx(x), sy(y)) for x, y in top[::-1]]
                out.append(
                    f'<polygon points="{_points(poly)}" fill="{color}" '
                    'fill-opacity="0.15" stroke="none"/>'
                )
        ps = pts[i]
        if not ps:
            continue
        coords = [(sx(x), sy(y)) for x, y in ps]
        if s.step:
            stepped = [coords[0]]
            for (_, y0), (x1, y1) in zip(coords, coords[1:], strict=False):
                stepped += [(x1, y0), (x1, y1)]
            coords = stepped
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        out.append(
            f'<polyline points="{_points(coords)}" fill="none" stroke="{color}" '
            f'stroke-width="2"{dash}><title>{escape(s.label)}</title></polyline>'
        )
        if s.markers:
            out.extend(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}">'
                f"<title>{escape(s.label)}: {escape(chart.xfmt(x))}, "
                f"{escape(chart.yfmt(y))}</title></circle>"
                for x, y in ps
            )
    for i, (value, label) in enumerate(chart.vlines):
        x = sx(value)
        # labels stacked up from the x axis, clear of the legend along the top
        # a label that would run past the plot's right edge goes left of its line
        left = x + 3 + 6.2 * len(label) > W - RIGHT
        tx, anchor = (x - 3, ' text-anchor="end"') if left else (x + 3, "")
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}" class="ref"/>'
            f'<text x="{tx:.1f}" y="{H - BOTTOM - 6 - 13 * i}" class="muted"{anchor}>'
            f"{escape(label)}</text>"
        )
    for value, label in chart.hlines:
        y = sy(value)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="ref"/>'
            f'<text x="{W - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" class="muted">'
            f"{escape(label)}</text>"
        )
    # legend (not for a lone unnamed series)
    lx = LEFT + 8
    shown = chart.series if len(chart.series) > 1 or chart.series[0].label else []
    for i, s in enumerate(shown):
        color = PALETTE[i % len(PALETTE)]
        out.append(
            f'<rect x="{lx}" y="{TOP + 4}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{TOP + 13}">{escape(s.label)}</text>'
        )
        lx += 24 + 7 * len(s.label)
    out.append("</svg>")
    return "".join(out)


def _points(coords: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)


def cdf(values: np.ndarray, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(x, F(x)) of the empirical CDF at up to `points` quantiles (for plotting)."""
    v = np.sort(values[np.isfinite(values)])
    if not v.size:
        return np.zeros(0), np.zeros(0)
    q = np.linspace(0, 1, min(points, v.size))
    x = np.quantile(v, q)
    return x, np.searchsorted(v, x, side="right") / v.size


def histogram(values: np.ndarray, *, log: bool, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(bin centers, share of values per bin), bins evenly spaced (in log space when `log`)."""
    v = values[np.isfinite(values)]
    if log:
        v = v[v > 0]
    if not v.size:
        return np.zeros(0), np.zeros(0)
    lo, hi = float(v.min()), float(v.max())
    if hi == lo:
        return np.array([lo]), np.array([1.0])
    edges = np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(v, edges)
    centers = np.sqrt(edges[:-1] * edges[1:]) if log else (edges[:-1] + edges[1:]) / 2
    return centers, counts / v.size
