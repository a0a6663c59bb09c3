"""`replay report RUN.json [--html FILE]` and `replay compare A.json B.json … [--html FILE]
[--json FILE]`: a saved run (`replay … --json`) shown again, as a terminal table or an offline
HTML page, and runs side by side. A CLI edge: the only place here that prints or exits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from corpus import CorpusError, outfile
from replay import plots, report_html
from replay import results as res
from replay.compare import Comparison, compare, dumps, texts
from replay.errors import ReplayError
from replay.progress import legend, notes, reasons, table

console = Console()
err_console = Console(stderr=True)
HELP = {"help_option_names": ["-h", "--help"]}

report_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich")
compare_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich")


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def load(path: Path) -> res.Run:
    """A `replay --json` document, or a one-line error naming the file and what to do."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _fail(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return res.loads(data)
    except msgspec.DecodeError as exc:
        raise _fail(f"{path}: not a replay --json document ({exc}); write one with "
                    "'replay CORPUS --json FILE'") from None


def check(paths: list[Path | None], force: bool, inputs: list[Path]) -> None:
    """Refuse, before any work, outputs that exist (without --force), a missing directory, or
    an output that is also an input."""
    for path in paths:
        if path is not None:
            try:
                outfile.check(path, force=force, inputs=inputs)
            except CorpusError as exc:
                raise _fail(str(exc)) from None


def write(path: Path, data: bytes) -> None:
    """Write beside `path` and rename, so a failure never leaves half a file."""
    try:
        outfile.write(path, data)
    except CorpusError as exc:
        raise _fail(str(exc)) from None
    console.print(f"wrote {path}", highlight=False)


def show(run: res.Run) -> None:
    """The terminal report: the table, why tiers got no agents, every note."""
    if run.levels:
        console.print(table(run))
        for line in reasons(run):
            console.print(escape(line), highlight=False)
        for line in legend(run):
            console.print(f"[dim]legend:[/] {escape(line)}", highlight=False)
    for note in notes(run):
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


@report_app.command(context_settings=HELP)
def report(
    run_json: Annotated[Path, typer.Argument(help="A run saved with 'replay … --json FILE'.")],
    html: Annotated[
        Path | None, typer.Option(help="Write the run as one offline HTML page here.")
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(help="Write PNG plots for slides into this folder (needs matplotlib: "
                     "pip install 'agentload[plot]')."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace output files that exist.")
    ] = False,
) -> None:
    """Show a saved run again: the table per tier; --html an offline HTML report, --png
    plots for slides."""
    shots = ([png / f"{stem}.png" for stem, *_ in plots.FIGURES]
             if png is not None and png.is_dir() else [])
    check([html, *shots], force, [run_json])
    run = load(run_json)
    show(run)
    if html is not None:
        write(html, report_html.render(run).encode("utf-8"))
    if png is not None:
        try:
            paths = plots.write(run, png)
        except (ReplayError, OSError) as exc:
            raise _fail(f"--png {png}: {exc}") from None
        console.print(f"wrote {len(paths)} plots to {png}", highlight=False)


def _table(comp: Comparison) -> Table:
    t = Table(title="replay compare (ratios to " + comp.names[0] + ")", title_justify="left")
    t.add_column("tier", no_wrap=True)
    for name in comp.names:
        t.add_column(f"{name}\nagents", justify="right")
    for name in comp.names:
        t.add_column(f"{name}\nper MW", justify="right")
    for row in comp.rows:
        agents, per_mw = texts(row)
        t.add_row(row.tier, *agents, *per_mw)
    return t


@compare_app.command(context_settings=HELP)
def compare_runs(
    runs: Annotated[list[Path], typer.Argument(help="Two or more runs saved with --json.")],
    name: Annotated[
        list[str] | None,
        typer.Option(help="A short name per run, in order (default: the file names)."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Write the comparison as one offline HTML page here.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the comparison as JSON here.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace output files that exist.")
    ] = False,
) -> None:
    """Runs side by side: agents and agents per MW per tier, their ratios to the first run,
    and the settings that differ."""
    if len(runs) < 2:
        raise _fail("compare needs at least two runs (replay compare A.json B.json …)")
    names = list(name) if name else [p.stem for p in runs]
    if len(names) != len(runs):
        raise _fail(f"--name given {len(names)} times for {len(runs)} runs; give one per run")
    if len(set(names)) != len(names):
        names = [str(p) for p in runs]
    check([html, json_out], force, list(runs))
    loaded = [load(p) for p in runs]
    comp = compare(loaded, names)
    console.print(_table(comp))
    for d in comp.differences:
        console.print(f"differs: {d.setting}: " + " | ".join(
            f"{n}={v}" for n, v in zip(comp.names, d.values, strict=True)), highlight=False)
    for note in comp.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if json_out is not None:
        write(json_out, dumps(comp))
    if html is not None:
        write(html, report_html.comparison(comp, loaded).encode("utf-8"))
