"""What the terminal shows: a live status line while a level runs, one line per finished level,
and the final table per tier. Only the CLI calls this (it owns the console)."""

from __future__ import annotations

from types import TracebackType

from rich import box
from rich.console import Console
from rich.live import Live as RichLive
from rich.table import Table
from rich.text import Text

from replay.explain import cell, hint, label, where, whys
from replay.level import Live
from replay.results import Level, Run

PLAIN_EVERY = 30.0
"""Seconds (reported) between progress lines when the output is not a terminal."""


def _f(value: float | None, fmt: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{unit}"


def _agents(n: int) -> str:
    return "agent" if n == 1 else "agents"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


LEGEND = "agents · P{sp} output speed · P{tp} time to first token · done · power · tier ✓/✗"
"""What the level lines show, printed once above them (≤ 80 columns)."""


class View:
    """Live progress on a terminal: one status line that stays a single line (cut, never
    wrapped) above the level lines; without a terminal, a plain progress line when a phase
    starts and every `PLAIN_EVERY` seconds, and one line per finished level. Use as a context
    manager."""

    def __init__(
        self, console: Console, *, label: str, enabled: bool = True, simulated: bool = False,
        stats: tuple[float, float] = (25.0, 95.0),
    ) -> None:
        self.console = console
        self.label = label
        self.enabled = enabled
        self.stats = stats
        """The percentiles of speed and TTFT the tiers check (--slo-stat): the level lines
        show those, so a ✗ agrees with the figure beside it."""
        self._live: RichLive | None = None
        self._legend = False
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
        # the figures first; the label (printed above the level lines) only where it fits
        text = Text.assemble(
            (f"level {live.level + 1}: {live.agents} {_agents(live.agents)}  ", "bold"),
            (f"{live.phase} {live.elapsed:.0f} s  ", "cyan"),
            f"{live.completed} done  {live.inflight} in flight  ",
            (f"{live.errors} err  ", "red") if live.errors else "",
            f"P25 {_f(live.p25_speed, '.1f', ' tok/s')}  P95 {_f(live.p95_ttft, '.2f', ' s')}",
            no_wrap=True, overflow="ellipsis",
        )
        if text.cell_len + 2 + len(self.label) <= self.console.width:
            text.append(f"  {self.label}", "dim")
        self._live.update(text)

    def _plain(self, live: Live) -> None:
        """Off a terminal: one line when a phase starts and every `PLAIN_EVERY` seconds, so a
        log shows the run is alive (and its errors) long before a level ends."""
        key = (live.level, live.phase)
        if key == self._phase and live.elapsed - self._said < PLAIN_EVERY:
            return
        self._phase, self._said = key, live.elapsed
        self.console.print(
            f"level {live.level + 1}: {live.agents} {_agents(live.agents)}  {live.phase} "
            f"{live.elapsed:.0f} s  done {live.completed}  in flight {live.inflight}  "
            f"err {live.errors}", highlight=False)

    def level(self, level: Level) -> None:
        if not self._legend:
            self._legend = True
            self.console.print(f"{self.label}: one line per measured level", highlight=False,
                               style="dim", soft_wrap=True)
            sp, tp = self.stats
            self.console.print(LEGEND.format(sp=f"{sp:g}", tp=f"{tp:g}"), highlight=False,
                               style="dim")
        self.console.print(level_line(level, self.stats), highlight=False, soft_wrap=True)
        for line in detail(level):
            self.console.print(f"  {line}", highlight=False, style="dim", soft_wrap=True)


def detail(level: Level) -> list[str]:
    """A level's fidelity and the server's own figures, one line each (when there are any)."""
    f = level.fidelity
    out: list[str] = []
    parts: list[str] = []
    if f.input_ratio is not None:
        parts.append(f"input {f.input_ratio:.1%} (max dev {f.input_max_dev:.1%})")
    if f.output_ratio is not None:
        parts.append(f"output {f.output_ratio:.1%} ({_pct(f.output_exact_share)} exact)")
    cache = f.cache_counters if f.cache_counters is not None else f.cache_server
    if cache is not None or f.cache_ideal is not None:
        parts.append(f"cache {_pct(cache)} / ideal {_pct(f.cache_ideal)}")
    if parts:
        out.append("fidelity: " + " · ".join(parts))
    s = level.server
    if s is not None:
        load = [f"running {_f(s.running_mean, '.1f')} (max {_f(s.running_max, '.0f')})",
                f"waiting {_f(s.waiting_mean, '.1f')} (max {_f(s.waiting_max, '.0f')})",
                f"KV {_pct(s.kv_usage_mean)} (peak {_pct(s.kv_usage_max)})"]
        if s.prompt_tps is not None:
            load.append(f"{s.prompt_tps:,.0f} prompt + {s.generation_tps or 0:,.0f} output tok/s")
        if s.gpu_util_mean is not None:
            load.append(f"GPU {s.gpu_util_mean:.0f}%")
        if s.sm_clock_mhz_mean is not None:
            load.append(f"SM {s.sm_clock_mhz_mean:,.0f} MHz")
        if s.gpu_mem_used_mib_max is not None:
            load.append(f"{s.gpu_mem_used_mib_max / 1024:,.1f} GiB used")
        out.append("server: " + " · ".join(load))
    if level.bottleneck:
        out.append(level.bottleneck)
    return out


def level_line(level: Level, stats: tuple[float, float] = (25.0, 95.0)) -> str:
    """One finished level in ≤ 80 columns (rich markup): agents, speed and TTFT at the tiers'
    percentiles (`stats`, P25 and P95 by default), requests, errors when any, power, a mark
    per tier (✓ met, ✗ missed, ? could not judge), and why the level cannot pass a tier
    (short, unstable, empty) or stopped early."""
    marks = " ".join(
        f"[yellow]?{v.floor:g}[/]" if v.inconclusive
        else f"[green]✓{v.floor:g}[/]" if v.passed else f"[red]✗{v.floor:g}[/]"
        for v in level.verdicts
    )
    power = ""
    if level.power is not None and level.power.mean_w is not None:
        power = f"  {level.power.mean_w:,.0f} W"
    errors = f" [red]{level.errors} err[/]" if level.errors else ""
    flags = (" [red]stopped[/]" if level.stopped else "") + (
        f" [yellow]{_flag(level.problem)}[/]" if level.problem else "")
    speed, ttft = level.p25_speed, level.p95_ttft
    if stats != (25.0, 95.0) and level.verdicts:  # the figures the tiers were judged on
        speed, ttft = level.verdicts[0].speed, level.verdicts[0].ttft_at
    return (
        f"level {level.index + 1}: [bold]{level.agents}[/] {_agents(level.agents)}  "
        f"P{stats[0]:g} {_f(speed, '.1f', ' tok/s')}  "
        f"P{stats[1]:g} {_f(ttft, '.1f' if (ttft or 0) >= 10 else '.2f', ' s')}  "
        f"{level.completed} ok{errors}{power}  {marks}{flags}"
    )


def _flag(problem: str) -> str:
    """A level's problem as one word for its line (the notes say it in full)."""
    for word, flag in (("short", "short"), ("stable", "unstable"), ("no request", "empty"),
                       ("interrupted", "partial")):
        if word in problem:
            return flag
    return "unjudged"


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


def legend(run: Run) -> list[str]:
    """One line per symbol the table and the level lines use, so none goes unexplained."""
    cells = [cell(r) for r in run.tiers]
    out = ["agents: the most concurrent agents whose steady window met the tier, judged only "
           "on complete, stable levels with enough completed requests"]
    if any(c.endswith("+") for c in cells):
        out.append("N+: met at the largest level tried; the capacity may be higher")
    if any(c.endswith("?") for c in cells):
        out.append("N?: unresolved: met at N, but no level close enough above it failed")
    if any("–" in c for c in cells):
        out.append("N–M: the capacity lies between N and M (the levels either side of the "
                   "boundary were measured repeatedly; N met the tier every time)")
    if "not measured" in cells:
        out.append("not measured: no level met the tier and none failed it at 1 agent, so "
                   "there is no answer (not 0)")
    levels = run.levels
    if any(v.inconclusive for lv in levels for v in lv.verdicts):
        out.append("?60 in a level line: that level could not judge the 60 tok/s tier "
                   "(short, unstable, empty): measured again with longer windows, or left out")
    if any(lv.stopped for lv in levels):
        out.append("stopped: the level's error rate passed --max-error-rate and it stopped "
                   "early (see the notes)")
    out.append("a row's figures come from the level that gave its answer (for a tier without "
               "one: the smallest level that failed it); —: no figure; errors: failed requests "
               "in that level's window; per-agent: share of agents whose own requests met the "
               "tier")
    return out


def reasons(run: Run) -> list[str]:
    """One line per tier whose answer needs a reason (no level met it, or capped)."""
    out = [f"{name}: {line}" for name, line in whys(run)]
    tip = hint(run)
    return [*out, tip] if tip else out


def notes(run: Run) -> list[str]:
    """Caveats to print under the table (simulated, short windows, interrupted, power)."""
    out = list(run.notes)
    if run.interrupted:
        out.append("interrupted: results cover the levels measured before the stop")
    if getattr(run, "forecast", False):  # every line of a forecast says so
        out = [n if n.startswith("forecast") else f"forecast: {n}" for n in out]
    return out
