"""What the terminal shows: a live status line while a level runs, one line per finished level,
and the final table per tier. Only the CLI calls this (it owns the console)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.live import Live as RichLive
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from replay.level import Live
from replay.results import Level, Run, TierResult

PLAIN_EVERY = 30.0
"""Seconds (reported) between progress lines when the output is not a terminal."""


def _f(value: float | None, fmt: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{unit}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


class View:
    """Live progress on a terminal; plain lines otherwise. Use as a context manager."""

    def __init__(
        self, console: Console, *, label: str, enabled: bool = True, simulated: bool = False
    ) -> None:
        self.console = console
        self.label = label
        self.enabled = enabled
        self.prefix = "[dim]simulated[/] " if simulated else ""
        self._live: RichLive | None = None
        self._phase: tuple[int, str] | None = None
        self._said = 0.0

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
            if self.enabled:
                self._plain(live)
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

    def _plain(self, live: Live) -> None:
        """Off a terminal: one line when a phase starts and every `PLAIN_EVERY` seconds."""
        key = (live.level, live.phase)
        if key == self._phase and live.elapsed - self._said < PLAIN_EVERY:
            return
        self._phase, self._said = key, live.elapsed
        self.console.print(
            f"{self.prefix}level {live.level + 1}: {live.agents} agents  {live.phase} "
            f"{live.elapsed:.0f} s  done {live.completed}  in flight {live.inflight}  "
            f"errors {live.errors}", highlight=False)

    def level(self, level: Level) -> None:
        marks = " ".join(
            f"[yellow]? {v.floor:g}[/]" if v.inconclusive
            else f"[green]✓ {v.floor:g}[/]" if v.passed else f"[red]✗ {v.floor:g}[/]"
            for v in level.verdicts
        )
        power = ""
        if level.power is not None and level.power.mean_w is not None:
            power = f"  {level.power.mean_w:,.0f} W"
        flags = "".join(f" [yellow]({escape(why)})[/]" for why in (level.stopped, level.problem)
                        if why)
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
    t = Table(title=title, title_justify="left")
    for name in ("tier", "agents", "agents/MW", "P25 tok/s", "P95 TTFT", "cache",
                 "errors", "per-agent"):
        t.add_column(name, justify="left" if name == "tier" else "right")
    for r in run.tiers:
        t.add_row(
            f"{r.floor:g} tok/s · {r.ttft:g} s",
            agents_cell(r),
            _f(r.agents_per_mw, ",.0f"),
            _f(r.p25_speed, ".1f"),
            _f(r.p95_ttft, ".2f", " s"),
            _pct(r.cache_hit_ratio),
            str(r.errors),
            _pct(r.agent_share),
        )
    return t


def agents_cell(r: TierResult) -> str:
    """The agents column: `12`, `12+` (at limit), `12?` (unresolved), `12–15` (interval from
    --repeats), `not measured`."""
    if r.agents is None:
        return "not measured"
    if r.capped:
        return f"{r.agents}+"
    if r.status == "unresolved":
        return f"{r.agents}?"
    if r.repeats > 1 and r.interval is not None and r.interval[1] is not None \
            and r.interval[1] > r.agents:
        return f"{r.agents}–{r.interval[1]}"
    return f"{r.agents}"


def legend(run: Run) -> list[str]:
    """One line per symbol the table and the level lines use, so none goes unexplained."""
    cells = [agents_cell(r) for r in run.tiers]
    out = ["agents: the most concurrent agents (top-level sessions) whose steady window met "
           "the tier (P25 output speed ≥ floor, P95 TTFT ≤ ceiling), judged only on complete, "
           "stable levels with enough completed requests"]
    if any(c.endswith("+") for c in cells):
        out.append("N+: passed at the largest level tried; the capacity may be higher")
    if any(c.endswith("?") for c in cells):
        out.append("N?: unresolved: passed at N, but no level close enough above it failed")
    if any("–" in c for c in cells):
        out.append("N–M: the capacity lies between N and M (the levels either side of the "
                   "boundary were measured repeatedly; N passed every time)")
    if "not measured" in cells:
        out.append("not measured: no level passed the tier and none failed it at 1 agent, so "
                   "there is no answer (not 0)")
    if any(v.inconclusive for lv in run.levels for v in lv.verdicts):
        out.append("? in a level line: that level could not judge the tier (reason in "
                   "brackets); it was measured again with longer windows or left out")
    out.append("figures in a row come from the level that gave its answer (for a tier "
               "without one: the smallest level that failed it); —: no figure; per-agent: "
               "share of agents whose own requests met the tier; errors: failed requests in "
               "that level's window")
    return out


def notes(run: Run) -> list[str]:
    """Caveats to print under the table (simulated, short windows, interrupted, power, and
    why a tier has no measured answer)."""
    out = list(run.notes)
    for r in run.tiers:
        if r.reason:
            out.append(f"{r.floor:g} tok/s · {r.ttft:g} s: {r.status}: {r.reason}")
    if run.interrupted:
        out.append("interrupted: results cover the levels measured before the stop")
    return out
