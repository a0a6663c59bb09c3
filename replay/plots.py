"""PNG plots of a run for slides (`replay report RUN.json --png DIR`), drawn with matplotlib
(the optional `agentload[plot]` extra): the HTML report's figures against agents, each with the
tiers' lines and the boundary each tier found, one file per figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from replay.errors import ConfigError
from replay.explain import kind, where
from replay.report_html import cache_ratio, measured, throughput
from replay.results import Level, Run

FIGURES: tuple[tuple[str, str, str, Callable[[Level], float | None], bool], ...] = (
    ("speed", "P25 output speed per request", "tokens/s", lambda lv: lv.p25_speed, False),
    ("ttft", "P95 time to first token", "seconds", lambda lv: lv.p95_ttft, True),
    ("throughput", "Throughput (steady window)", "output tokens/s", throughput, False),
    ("power", "Mean power (steady window)", "watts",
     lambda lv: lv.power.mean_w if lv.power is not None else None, False),
    ("cache", "Prefix-cache hits seen by the server", "share of prompt tokens", cache_ratio, False),
)
"""(file stem, title, y label, the level's figure, log y axis)."""


def _pyplot() -> tuple[Any, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        raise ConfigError("PNG plots need matplotlib: pip install 'agentload[plot]'") from None
    return plt, ticker


def write(run: Run, directory: Path, *, dpi: int = 150) -> list[Path]:
    """One PNG per figure in `directory` (created); returns the paths written."""
    plt, ticker = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    levels = measured(run)
    xs = [lv.agents for lv in levels]
    out = []
    for stem, title, ylabel, value, log in FIGURES:
        pts = [(x, v) for x, lv in zip(xs, levels, strict=True) if (v := value(lv)) is not None]
        fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color="#1f6fb4",
                    label="measured levels")
        if stem == "speed":
            for r in run.tiers:
                ax.axhline(r.floor, color="#555", linestyle=":", linewidth=1)
                ax.annotate(f"{r.floor:.3g} tok/s", (1, r.floor), xycoords=("axes fraction",
                            "data"), ha="right", va="bottom", fontsize=8, color="#555")
        if stem == "ttft":
            for r in run.tiers:
                ax.axhline(r.ttft, color="#555", linestyle=":", linewidth=1)
        for r in run.tiers:
            if r.agents:
                ax.axvline(r.agents, color="#2a9d4b", linestyle="--", linewidth=1)
                ax.annotate(f"{r.floor:.3g} tok/s: {r.agents}", (r.agents, 0.02),
                            xycoords=("data", "axes fraction"), fontsize=8, color="#2a9d4b",
                            rotation=90, ha="right", va="bottom")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("agents (concurrent sessions)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title} ({kind(run)}: {where(run)})", fontsize=10)
        ax.grid(alpha=0.3)
        path = directory / f"{stem}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        out.append(path)
    return out
