"""What the terminal shows: a live status line while a level runs, one line per finished level,
and the final table per tier. Only the CLI calls this (it owns the console)."""

from __future__ import annotations

from types import TracebackType

from rich import box
from rich.console import Console
from rich.live import Live as RichLive
from rich.table import Table
from rich.text import Text

from replay.explain import cell, label, where, whys
from replay.level import Live
from replay.results import Level, Run


def _f(value: float | None, fmt: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{unit}"


def _agents(n: int) -> str:
    return "agent" if n == 1 else "agents"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


LEGEND = "agents · P25 output speed · P95 time to first token · done · power · tier ✓/✗"
"""What the level lines show, printed once above them (≤ 80 columns)."""


class View:
    """Live progress on a terminal: one status line that stays a single line (cut, never
    wrapped) above the level lines; without a terminal, one plain line per finished level and
    no status line. Use as a context manager."""

    def __init__(
        self, console: Console, *, label: str, enabled: bool = True, simulated: bool = False
    ) -> None:
        self.console = console
        self.label = label
        self.enabled = enabled
        self._live: RichLive | None = None
        self._legend = False

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
            (f"{live.phase} {live.elapsed:.0f} s  ", "cyan"),
            f"done {live.completed}  in flight {live.inflight}  err {live.errors}  ",
            f"P25 {_f(live.p25_speed, '.1f', ' tok/s')}  P95 TTFT {_f(live.p95_ttft, '.2f', ' s')}",
            (f"  window {live.window_requests}" if live.phase == "window" else ""),
            no_wrap=True, overflow="ellipsis",
        )
        self._live.update(text)

    def level(self, level: Level) -> None:
        if not self._legend:
            self._legend = True
            self.console.print(f"{self.label}: one line per measured level", highlight=False,
                               style="dim", soft_wrap=True)
            self.console.print(LEGEND, highlight=False, style="dim")
        self.console.print(level_line(level), highlight=False, soft_wrap=True)


def level_line(level: Level) -> str:
    """One finished level in ≤ 80 columns (rich markup): agents, P25 speed, P95 TTFT,
    requests, errors when any, power, and a mark per tier (✓ met, ✗ missed, ? nothing to
    judge)."""
    marks = " ".join(
        f"[yellow]?{v.floor:g}[/]" if v.inconclusive
        else f"[green]✓{v.floor:g}[/]" if v.passed else f"[red]✗{v.floor:g}[/]"
        for v in level.verdicts
    )
    power = ""
    if level.power is not None and level.power.mean_w is not None:
        power = f"  {level.power.mean_w:,.0f} W"
    errors = f" [red]{level.errors} err[/]" if level.errors else ""
    flags = (" [yellow]short[/]" if level.short else "") + (
        "" if level.stable else " [yellow]unstable[/]"
    )
    return (
        f"level {level.index + 1}: [bold]{level.agents}[/] {_agents(level.agents)}  "
        f"P25 {_f(level.p25_speed, '.1f', ' tok/s')}  "
        f"P95 {_f(level.p95_ttft, '.1f' if (level.p95_ttft or 0) >= 10 else '.2f', ' s')}  "
        f"{level.completed} ok{errors}{power}  {marks}{flags}"
    )


def columns(run: Run) -> tuple[tuple[str, str], ...]:
    """Two-line headers, so the table fits 80 columns with every header whole; the speed and
    TTFT columns name the statistics the tiers checked (P25 and P95 by default)."""
    first = run.tiers[0] if run.tiers else None
    sp, tp = (first.speed_pct, first.ttft_pct) if first is not None else (25.0, 95.0)
    return (
        ("tier", "tok/s, TTFT"),
        ("agents", ""),
        ("agents", "per MW"),
        (f"P{sp:g}", "tok/s"),
        (f"P{tp:g}", "TTFT"),
        ("cache", "hits"),
        ("errors", ""),
        ("per-", "agent"),
    )


def table(run: Run) -> Table:
    """The final table: one row per tier, at most 80 columns wide, headers never cut."""
    title = f"replay {run.corpus.path} — {where(run)} ({run.api}, model {run.model})"
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
              padding=(0, 1))
    for top, bottom in columns(run):
        header = f"{top}\n{bottom}" if bottom else top
        left = top == "tier"
        t.add_column(header, justify="left" if left else "right", no_wrap=True,
                     min_width=max(len(top), len(bottom)))
    for r in run.tiers:
        t.add_row(
            label(r),
            cell(r),
            _f(r.agents_per_mw, ",.0f"),
            _f(r.p25_speed, ".1f"),
            _f(r.p95_ttft, ".2f", " s"),
            _pct(r.cache_hit_ratio),
            str(r.errors),
            _pct(r.agent_share),
        )
    return t


def reasons(run: Run) -> list[str]:
    """One line per tier whose answer needs a reason (no level met it, or capped)."""
    return [f"{name}: {line}" for name, line in whys(run)]


def notes(run: Run) -> list[str]:
    """Caveats to print under the table (simulated, short windows, interrupted, power)."""
    out = list(run.notes)
    if run.interrupted:
        out.append("interrupted: results cover the levels measured before Ctrl-C")
    return out
