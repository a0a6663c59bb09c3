"""What the terminal shows: a live status line while a level runs, one line per finished level,
and the final table per tier. Only the CLI calls this (it owns the console)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.live import Live as RichLive
from rich.table import Table
from rich.text import Text

from replay.level import Live
from replay.results import Level, Run


def _f(value: float | None, fmt: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{unit}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


class View:
    """Live progress on a terminal; plain lines otherwise. Use as a context manager."""

    def __init__(
        self, console: Console, *, label: str, enabled: bool = True, mode: str = ""
    ) -> None:
        """`mode` ("simulated", "forecast" or "") starts every level line."""
        self.console = console
        self.label = label
        self.enabled = enabled
        self.prefix = f"[dim]{mode}[/] " if mode else ""
        self._live: RichLive | None = None

    def __enter__(self) -> View:
        if self.enabled and self.console.is_terminal:
            self._live = RichLive(Text(""), console=self.console, refresh_per_second=4,
                                  transient=True)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def tick(self, live: Live) -> None:
        if self._live is None:
            return
        text = Text.assemble(
            (f"{self.label}  ", "dim"),
            (f"level {live.level + 1}: {live.agents} agents ", "bold"),
            (f"[{live.phase} {live.elapsed:5.1f} s]  ", "cyan"),
            f"done {live.completed}  in flight {live.inflight}  errors {live.errors}  ",
            f"P25 speed {_f(live.p25_speed, '.1f', ' tok/s')}  ",
            f"P95 TTFT {_f(live.p95_ttft, '.2f', ' s')}",
            (f"  window requests {live.window_requests}" if live.phase == "window" else ""),
        )
        self._live.update(text)

    def level(self, level: Level) -> None:
        marks = " ".join(
            f"[yellow]? {v.floor:g}[/]" if v.inconclusive
            else f"[green]✓ {v.floor:g}[/]" if v.passed else f"[red]✗ {v.floor:g}[/]"
            for v in level.verdicts
        )
        power = ""
        if level.power is not None and level.power.mean_w is not None:
            power = f"  {level.power.mean_w:,.0f} W"
        flags = (" [yellow](short window)[/]" if level.short else "") + (
            "" if level.stable else " [yellow](not stable)[/]"
        )
        self.console.print(
            f"{self.prefix}level {level.index + 1}: [bold]{level.agents}[/] agents  "
            f"P25 {_f(level.p25_speed, '.1f', ' tok/s')}  "
            f"P95 TTFT {_f(level.p95_ttft, '.2f', ' s')}"
            f"  {level.completed} ok / {level.errors} errors{power}  {marks}{flags}"
        )


def table(run: Run) -> Table:
    """The final table: one row per tier."""
    where = f"simulated engine, profile {run.profile}" if run.simulated else run.endpoint
    title = f"replay {run.corpus.path} — {where} ({run.api}, model {run.model})"
    if run.forecast:
        title = f"forecast {run.corpus.path} — {run.endpoint.removeprefix('forecast: ')}"
    t = Table(title=title, title_justify="left",
              caption="forecast: modelled engine in virtual time, not a measurement"
              if run.forecast else None, caption_justify="left")
    for name in ("tier", "agents", "agents/MW", "P25 tok/s", "P95 TTFT", "cache",
                 "errors", "per-agent"):
        t.add_column(name, justify="left" if name == "tier" else "right")
    for r in run.tiers:
        agents = f"{r.agents}" + ("+" if r.capped else "") + (
            "" if r.resolved and not r.inconclusive else " ?")
        t.add_row(
            f"{r.floor:g} tok/s · {r.ttft:g} s",
            agents,
            _f(r.agents_per_mw, ",.0f"),
            _f(r.p25_speed, ".1f"),
            _f(r.p95_ttft, ".2f", " s"),
            _pct(r.cache_hit_ratio),
            str(r.errors),
            _pct(r.agent_share),
        )
    return t


def notes(run: Run) -> list[str]:
    """Caveats to print under the table (simulated, short windows, interrupted, power)."""
    out = list(run.notes)
    if run.interrupted:
        out.append("interrupted: results cover the levels measured before Ctrl-C")
    if run.forecast:  # every line of a forecast says so
        out = [n if n.startswith("forecast") else f"forecast: {n}" for n in out]
    return out
