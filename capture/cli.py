"""The `capture` command: a recording proxy between agents and their LLM API.

The only module of the package that prints or exits. Errors become one `error: …` line and
exit code 1; Ctrl-C (or SIGTERM) stops the proxy, records what is in flight, closes every
session and the corpus, prints a summary and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from capture import hints
from capture.errors import CaptureError, flagged
from capture.listeners import Listener, plan
from capture.recorder import Recorder, Stats
from corpus import CorpusError

app = typer.Typer(
    name="capture",
    help="Record anonymized agent sessions by proxying their LLM API calls.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(1)


def _human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def status_line(stats: Stats) -> Text:
    """The live line: sessions, turns, tokens, errors."""
    text = Text()
    text.append(f"sessions {stats.sessions}", style="bold")
    text.append(f" ({stats.open} open) · turns {stats.turns}")
    text.append(f" · tokens in {_human(stats.input_tokens)} out {_human(stats.output_tokens)}")
    text.append(f" · failed {stats.failed} · aborted {stats.aborted}")
    errors = f" · recorder errors {stats.errors}"
    text.append(errors, style="red" if stats.errors else "")
    if stats.skipped:
        text.append(f" · skipped {stats.skipped}")
    if stats.warmups:
        text.append(f" · warm-ups {stats.warmups}")
    if stats.shed:
        text.append(f" · shed {stats.shed}", style="red")
    return text


ALERT_EVERY = 30.0
"""Seconds between repeated warnings while recorder failures or shed calls keep rising."""


class Alerts:
    """Warnings to print while recording (the live line alone is easy to miss, and absent
    with --quiet or off a terminal): the first recorder failure or shed call at once, then
    again at most every `ALERT_EVERY` seconds while their counts keep rising."""

    def __init__(self) -> None:
        self.errors = 0
        self.shed = 0
        self.said_at: float | None = None

    def check(self, stats: Stats, now: float) -> list[str]:
        errors, shed = stats.errors, stats.shed
        if (errors, shed) == (self.errors, self.shed):
            return []
        if self.said_at is not None and now - self.said_at < ALERT_EVERY:
            return []
        out = []
        if errors > self.errors:
            out.append(f"recording is failing ({stats.last_error}; {errors} failures so far): "
                       "the traffic is unaffected, but those calls are missing from the corpus")
        if shed > self.shed:
            out.append(f"the recorder is behind: {shed} calls shed (not recorded) so far; the "
                       "traffic is unaffected")
        self.errors, self.shed, self.said_at = errors, shed, now
        return out


class _ToConsole(logging.Handler):
    """mitmproxy's warnings (e.g. an agent that doesn't trust the CA) above the live line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err.print(f"[yellow]proxy:[/] {escape(record.getMessage())}")
        except Exception:  # noqa: BLE001 - logging must never fail the proxy
            pass


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass


async def _serve(
    recorder: Recorder,
    listeners: list[Listener],
    *,
    confdir: Path,
    insecure: bool,
    intercept: tuple[str, ...],
    live: bool,
) -> None:
    from capture.proxy import Proxy  # mitmproxy: imported once the arguments are good

    proxy = Proxy(recorder, listeners, confdir=confdir, insecure=insecure, intercept=intercept)
    addrs = await proxy.start()
    for li, (_, port) in zip(listeners, addrs, strict=True):
        lines = hints.reverse(li, port) if li.upstream else hints.forward(li, port, confdir)
        for line in lines:
            console.print(line)
    console.print("recording; Ctrl-C to stop")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    alerts = Alerts()

    def warn(view: Live | None) -> None:
        for line in alerts.check(recorder.stats, loop.time()):
            (view.console if view is not None else err).print(
                f"[yellow]warning:[/] {escape(line)}")

    try:
        if live:
            with Live(status_line(recorder.stats), console=console, refresh_per_second=2) as view:
                while not stop.is_set():
                    view.update(status_line(recorder.stats))
                    warn(view)
                    await _wait(stop, 0.5)
        else:
            while not stop.is_set():
                warn(None)
                await _wait(stop, 0.5)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await proxy.stop()


@app.command()
def capture(
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Corpus file to write; an existing one is appended to."
        ),
    ],
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            "--upstream",
            help="LLM API to forward to (reverse mode), e.g. https://api.anthropic.com; "
            "repeat for several, each gets its own listener.",
        ),
    ] = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(
            "--listen",
            help="HOST:PORT to listen on, one per --upstream in order "
            "(default 127.0.0.1:8081, 8082, …; forward mode 127.0.0.1:8080).",
        ),
    ] = None,
    forward: Annotated[
        bool,
        typer.Option(
            "--forward",
            help="Run as a forward (HTTPS_PROXY) proxy with mitmproxy's CA: LLM API calls are "
            "recorded, all other traffic passes through untouched.",
        ),
    ] = False,
    domain: Annotated[
        str, typer.Option(help="Domain written in a new corpus's header (legal, support, …).")
    ] = "unknown",
    idle: Annotated[
        float, typer.Option(help="Close a session after this many seconds without a call.")
    ] = 900.0,
    intercept: Annotated[
        list[str] | None,
        typer.Option(
            "--intercept",
            help="Forward mode: another API host to decrypt and record (e.g. llm.corp.example; "
            "*.example.com for subdomains).",
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Don't verify the upstream's TLS certificate.")
    ] = False,
    confdir: Annotated[
        Path, typer.Option(help="mitmproxy's configuration directory (its CA lives there).")
    ] = Path("~/.mitmproxy"),
    quiet: Annotated[bool, typer.Option(help="No live status line.")] = False,
) -> None:
    """Proxy agents' LLM API calls and record them as an anonymized corpus."""
    from capture.output import open_corpus

    try:
        listeners = plan(upstream or [], listen or [], forward=forward)
        writer, notes = open_corpus(output, domain=domain)
    except (CaptureError, CorpusError) as exc:
        raise _fail(flagged(exc)) from None
    except OSError as exc:
        raise _fail(f"{output}: {exc.strerror or exc}") from None
    for note in notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    recorder = Recorder(writer, idle=idle)
    recorder.start()
    logging.getLogger("mitmproxy").addHandler(_ToConsole(logging.WARNING))
    logging.getLogger("mitmproxy").propagate = False
    failure: str | None = None
    try:
        asyncio.run(
            _serve(
                recorder,
                listeners,
                confdir=confdir.expanduser(),
                insecure=insecure,
                intercept=tuple(intercept or ()),
                live=not quiet and console.is_terminal,
            )
        )
    except CaptureError as exc:
        failure = flagged(exc)
    except KeyboardInterrupt:
        pass
    finally:
        recorder.close()
    stats = recorder.stats
    console.print(status_line(stats))
    console.print(f"wrote {output} ({writer.frames} frames this run)")
    if stats.errors:
        where = ", ".join(f"{k} {v}" for k, v in sorted(stats.where.items()))
        err.print(
            f"[yellow]note:[/] {stats.errors} recorder errors ({where}; last: "
            f"{escape(stats.last_error)}); the traffic was not affected, those calls are "
            "missing from the corpus"
        )
    if {"flush", "close"} & stats.where.keys():
        err.print(f"[yellow]note:[/] {output}: writing failed; it holds the frames written "
                  "before (check free space; 'corpus validate' says what is intact)")
    if stats.shed:
        err.print(
            f"[yellow]note:[/] {stats.shed} calls shed while the recorder was behind (queue "
            "full); the traffic was not affected, those calls are missing from the corpus"
        )
    if failure is not None:
        raise _fail(failure)


def main() -> None:
    """Console-script entry point."""
    app()
