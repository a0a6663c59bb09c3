"""The `corpus` command: inspect, check, combine, cut down, repair, import and export corpora.

The only place in the package that prints or exits. Library errors (`CorpusError`) and file
system errors become `error: …` on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from corpus import ops
from corpus import synth as synthesis
from corpus.errors import CorpusError

app = typer.Typer(
    name="corpus",
    help="Inspect, check, combine, cut down, repair, import and export agentload corpora.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(1)


def _errors[F: Callable[..., Any]](fn: F) -> F:
    """Library and file-system errors become one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CorpusError as exc:
            raise _fail(str(exc)) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise _fail(f"{where}{exc.strerror or exc}") from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A byte-progress bar on stderr (none when stderr is not a terminal)."""
    if not err.is_terminal:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


@contextmanager
def _status(label: str) -> Iterator[None]:
    """A spinner on stderr while something without a byte count runs (terminals only)."""
    if not err.is_terminal:
        yield
        return
    with err.status(label, spinner="dots"):
        yield


Output = Annotated[Path, typer.Option("--output", "-o", help="File to write.", dir_okay=False)]
Force = Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")]
KeepKeys = Annotated[
    bool,
    typer.Option(
        "--keys/--no-keys",
        help="Give the output a copy of the input's keys sidecar, so its block ids stay "
        "consistent with later captures (when the input has one).",
    ),
]
# no `dir_okay=False`: a directory gets the reader's one-line error, not a usage box
Input = Annotated[Path, typer.Argument(help="Corpus file (.zst).")]
AllowDamaged = Annotated[
    bool,
    typer.Option(
        "--allow-damaged",
        help="Read the intact frames of a damaged file instead of stopping with an error.",
    ),
]


def _wrote(path: Path, result: ops.Copied) -> None:
    keys = " (with keys sidecar)" if result.keys else ""
    out.print(
        f"wrote {escape(str(path))}{keys}: {result.sessions} sessions, {result.turns} turns, "
        f"{result.frames} frames"
    )


# -- inspect ----------------------------------------------------------------------------------


@app.command()
@_errors
def info(
    file: Input,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    allow_damaged: AllowDamaged = False,
) -> None:
    """What a corpus holds: header, sessions, turns, tokens, time span, models and agents."""
    from corpus.summary import info as summarize

    with _status("reading"):
        facts = summarize(file, allow_damaged=allow_damaged)
    if as_json:
        typer.echo(json.dumps(facts.as_dict(), indent=2, ensure_ascii=False))
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, object]] = [
        ("file", f"{facts.file} ({facts.bytes:,} bytes, format v{facts.version})"),
        ("domain", facts.domain),
        ("source", facts.source),
        ("tokenizer", f"{facts.tokenizer}, {facts.block_size}-token blocks"),
        ("created", f"{facts.created} by {facts.producer}"),
        ("licence", facts.license or "—"),
        (
            "sessions",
            f"{facts.sessions:,} ({facts.sub_agents:,} sub-agents, "
            f"{facts.unclosed_sessions:,} never closed)",
        ),
        ("turns", f"{facts.turns:,}"),
        ("input tokens", f"{facts.input_tokens:,}"),
        (
            "output tokens",
            f"{facts.output_tokens:,}"
            + (f" ({facts.reasoning_tokens:,} reasoning)" if facts.reasoning_tokens else ""),
        ),
        ("distinct blocks", f"{facts.distinct_blocks:,}"),
        ("time span", _duration(facts.time_span)),
    ]
    for name, counts in (("models", facts.models), ("apis", facts.apis), ("agents", facts.agents)):
        rows.append((name, _mix(counts)))
    if len(facts.domains) > 1:
        rows.append(("domains", _mix(facts.domains)))
    if facts.notes:
        rows.append(("notes", facts.notes))
    for name, value in rows:
        grid.add_row(name, escape(str(value)))
    out.print(grid)
    if facts.note:
        err.print(f"[yellow]note:[/] {escape(facts.note)}")
    if facts.damage:
        err.print(f"[yellow]warning:[/] {escape(facts.damage)}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _mix(counts: dict[str, int]) -> str:
    if not counts:
        return "—"
    shown = [f"{name or '(unknown)'} ×{n:,}" for name, n in list(counts.items())[:8]]
    if len(counts) > 8:
        shown.append(f"… {len(counts) - 8} more")
    return ", ".join(shown)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@app.command()
@_errors
def validate(
    file: Input,
    limit: Annotated[int, typer.Option(help="Problems listed per kind.", min=1)] = 20,
) -> None:
    """Check every frame and invariant; exit 1 with the list of problems."""
    from corpus.validate import validate as check

    with _progress("validating") as update:
        result = check(file, limit=limit, progress=update)
    if result.note:
        err.print(f"[yellow]note:[/] {escape(result.note)}")
    if result.ok:
        out.print(
            f"{escape(str(file))}: ok ({result.frames} frames, {result.sessions} sessions, "
            f"{result.turns} turns)"
        )
        return
    for problem in result.problems:
        err.print(f"  {escape(problem)}")
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.counts.items()))
    raise _fail(f"{file}: {_plural(result.total, 'problem')} ({kinds})")


# -- combine and cut down ---------------------------------------------------------------------


@app.command()
@_errors
def merge(
    inputs: Annotated[list[Path], typer.Argument(help="Corpora to merge, in order.")],
    output: Output,
    disjoint: Annotated[
        bool,
        typer.Option(
            help="Allow inputs written with different keys: their block ids are made disjoint, "
            "so no prefix is shared across inputs (within each input sharing is kept)."
        ),
    ] = False,
    domain: Annotated[
        str | None, typer.Option(help="Header domain (default: the common one, else 'mixed').")
    ] = None,
    force: Force = False,
) -> None:
    """Merge corpora into one, renumbering sessions.

    Block ids are unified when every input has a keys sidecar with the same key (copies of one
    corpus); otherwise --disjoint gives each input its own ids, so nothing is falsely shared.
    """
    with _progress("merging") as update:
        result = ops.merge(
            inputs, output, disjoint=disjoint, domain=domain, force=force, progress=update
        )
    _wrote(output, result)
    if not result.keys and len(inputs) > 1:
        err.print(
            "[yellow]note:[/] block ids are disjoint across inputs and the output has no keys "
            "sidecar, so later captures can't share block ids with it"
        )


@app.command("filter")
@_errors
def filter_(
    file: Input,
    output: Output,
    domain: Annotated[
        str | None, typer.Option(help="Session domain (pattern, e.g. 'leg*').")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model (pattern, e.g. 'claude-*').")] = None,
    agent: Annotated[str | None, typer.Option(help="Agent family (pattern).")] = None,
    min_turns: Annotated[int | None, typer.Option(help="Keep sessions with ≥ N turns.")] = None,
    max_turns: Annotated[int | None, typer.Option(help="Keep sessions with ≤ N turns.")] = None,
    keys: KeepKeys = True,
    force: Force = False,
) -> None:
    """Keep the sessions that match every criterion.

    Each session is judged on its own; a kept sub-agent whose parent is dropped becomes a
    top-level session.
    """
    with _progress("filtering") as update:
        result = ops.select(
            file,
            output,
            domain=domain,
            model=model,
            agent=agent,
            min_turns=min_turns,
            max_turns=max_turns,
            keys=keys,
            force=force,
            progress=update,
        )
    _wrote(output, result)
    out.print(f"kept {result.sessions} of {result.of_sessions} sessions")


@app.command()
@_errors
def sample(
    file: Input,
    output: Output,
    n: Annotated[int, typer.Option("-n", help="Top-level sessions to draw.", min=0)],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same sample).")] = 0,
    keys: KeepKeys = True,
    force: Force = False,
) -> None:
    """Draw N top-level sessions at random; their sub-agents come with them."""
    with _progress("sampling") as update:
        result = ops.sample(file, output, n=n, seed=seed, keys=keys, force=force, progress=update)
    _wrote(output, result)
    out.print(f"kept {result.sessions} of {result.of_sessions} sessions")


@app.command()
@_errors
def synth(
    output: Output,
    like: Annotated[
        str,
        typer.Option(
            "--like",
            help="coding (the reference coding workload: AA-AgentPerf's published figures and "
            "AA's public recordings) or a corpus path to fit a model to.",
        ),
    ] = "coding",
    n: Annotated[int, typer.Option("-n", help="Top-level sessions to generate.", min=1)] = 100,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same corpus).")] = 0,
    force: Force = False,
) -> None:
    """Generate synthetic sessions from a fitted model of a corpus (or of the coding reference)."""
    with _status(f"fitting {like}"):
        model = synthesis.like(like)
    inputs = [] if like == "coding" else [Path(like)]
    with _status("generating"), ops.replacing(output, force=force, inputs=inputs) as tmp:
        made = synthesis.generate(model, tmp, n=n, seed=seed)
    out.print(
        f"wrote {escape(str(output))}: {made.sessions} synthetic sessions"
        + (f" and {made.subagents} sub-agents" if made.subagents else "")
        + f", {made.turns} turns (like {escape(like)}, seed {seed})"
    )
    for note in model.notes:
        out.print(f"note: {escape(note)}")


@app.command()
@_errors
def salvage(file: Input, output: Output, keys: KeepKeys = True, force: Force = False) -> None:
    """Rewrite what is intact of a damaged corpus (a killed capture, a cut copy)."""
    with _progress("salvaging") as update:
        result = ops.salvage(file, output, keys=keys, force=force, progress=update)
    for d in result.damage:
        out.print(f"damage: frame {d.frame} at byte {d.offset:,}: {d.kind} ({escape(d.detail)})")
    if not result.damage:
        out.print("no damage found; copied everything")
    _wrote(output, result)
    out.print(
        f"kept {result.frames_kept} intact frames and {result.records_recovered} records from "
        f"damaged ones; {result.sessions_cut} sessions cut at a damaged spot, "
        f"{result.turns_dropped} turns after it dropped"
    )


# -- interop ----------------------------------------------------------------------------------


def _interop(name: str) -> Any:
    """`corpus.importers` or `corpus.exporters`, imported only when a command needs it."""
    try:
        return importlib.import_module(f"corpus.{name}")
    except ImportError as exc:
        raise _fail(f"{name} are not available in this build ({exc})") from None


def _formats(module: Any) -> str:
    return ", ".join(sorted(module.FORMATS))


# Listed here so that help needs no importer loaded; a test keeps them equal to the modules'.
IMPORT_FORMATS = {
    "agentic-mooncake": "Dynamo Agentic Mooncake (v2 with header; v1 wait_for/tool_wait_ms rows)",
    "agentperf-local": "AA's agentperf-local traces (the wheel, its folder or *.jsonl)",
    "bailian": "Alibaba Bailian anonymized traces (16-token SipHash blocks, chat_id chains)",
    "claude-code": "Claude Code transcripts (~/.claude/projects, sub-agents included)",
    "codex": "Codex CLI rollouts (~/.codex/sessions, *.jsonl and *.jsonl.zst)",
    "conversations": "JSONL of OpenAI-style message lists (schema in the importers README)",
    "dynamo": "NVIDIA Dynamo agent traces (dynamo.agent.trace.v1 JSONL, tool events)",
    "mini-swe-agent": "mini-swe-agent *.traj.json trajectories",
    "mooncake": "Mooncake JSONL (512-token hash blocks; session_id/delay when present)",
    "otel": "OpenTelemetry GenAI spans as OTLP JSON (*.json, collector *.jsonl)",
    "tracelab": "TraceLab agentic-coding rounds (JSONL or .jsonl.gz)",
    "weka": "kv-cache-tester (WEKA) trace_*.json, sub-agents included",
}
EXPORT_FORMATS = {
    "agentic-mooncake": "Dynamo Agentic Mooncake v2 (whole requests with dependency edges)",
    "agentperf-local": "AA's agentperf-local replay folder (manifest + one JSONL row per turn)",
    "mooncake": "Mooncake JSONL for AIPerf/Dynamo session replay (one row per turn: what it adds)",
    "weka": "kv-cache-tester (WEKA) trace_NNNN.json folder",
}


def _epilog(formats: dict[str, str]) -> str:
    lines = "\n\n".join(f"  {name}: {what}" for name, what in formats.items())
    return f"Formats:\n\n{lines}\n\nRules per format: corpus/importers/README.md"


@app.command("import", epilog=_epilog(IMPORT_FORMATS))
@_errors
def import_(
    fmt: Annotated[
        str, typer.Argument(metavar="FORMAT", help=f"Source format: {', '.join(IMPORT_FORMATS)}.")
    ],
    sources: Annotated[list[Path], typer.Argument(help="Source files or folders.")],
    output: Output,
    domain: Annotated[str | None, typer.Option(help="Domain for the header.")] = None,
    block_size: Annotated[
        int | None,
        typer.Option(help="Tokens per block (re-blocks sources that carry text).", min=1),
    ] = None,
    level: Annotated[int, typer.Option(help="zstd level.", min=1, max=22)] = 19,
    force: Force = False,
) -> None:
    """Build a corpus from another tool's traces or conversations (anonymized as captured)."""
    importers = _interop("importers")
    if fmt not in importers.FORMATS:
        raise _fail(f"unknown import format {fmt!r}; expected one of {_formats(importers)}")
    with _progress(f"importing {fmt}") as update:

        def progress(*args: Any, **_: Any) -> None:
            numbers = [a for a in args if isinstance(a, int)]
            if numbers:
                update(numbers[0], numbers[1] if len(numbers) > 1 else 0)

        with ops.replacing(output, force=force, inputs=sources) as tmp:
            report = importers.run(
                fmt,
                sources,
                tmp,
                domain=domain,
                block_size=block_size,
                level=level,
                progress=progress,
            )
    out.print(
        f"wrote {escape(str(output))}: {report.sessions} sessions, {report.turns} turns, "
        f"{report.input_tokens:,} input and {report.output_tokens:,} output tokens"
    )
    skipped = list(getattr(report, "skipped", []) or [])
    for line in skipped[:20]:
        err.print(f"  skipped {escape(str(line))}")
    if len(skipped) > 20:
        err.print(f"  … and {len(skipped) - 20} more skipped")
    for line in getattr(report, "warnings", []) or []:
        err.print(f"[yellow]warning:[/] {escape(str(line))}")


@app.command("export", epilog=_epilog(EXPORT_FORMATS))
@_errors
def export(
    fmt: Annotated[
        str, typer.Argument(metavar="FORMAT", help=f"Target format: {', '.join(EXPORT_FORMATS)}.")
    ],
    file: Input,
    output: Annotated[Path, typer.Option("--output", "-o", help="File or folder to write.")],
    block_size: Annotated[
        int | None,
        typer.Option(help="Coarser blocks for the target (a multiple of the corpus's).", min=1),
    ] = None,
    whole: Annotated[
        bool,
        typer.Option(
            "--whole-requests",
            help="mooncake: every row holds its turn's whole input (for replayers that send "
            "rows on their own); by default later rows of a session hold what the turn adds, "
            "as AIPerf's and Dynamo's session replay expect.",
        ),
    ] = False,
    framing: Annotated[
        int | None,
        typer.Option(
            help="mooncake: tokens the replay server's chat template adds per message the "
            "replayer sends, left out of the rows (default 5: ChatML, Llama 3, replay serve).",
            min=0,
        ),
    ] = None,
    separator: Annotated[
        int | None,
        typer.Option(
            "--separator-tokens",
            help="mooncake: tokens more per hash block the server counts in the replayer's "
            "synthesized prompt, left out of each row (AIPerf starts every block with its "
            "tokenizer's BOS/EOS token; with a tiktoken tokenizer against a server that counts "
            "text, e.g. replay serve, that is 6; default 0).",
            min=0,
        ),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(
            "--format-version",
            help="agentic-mooncake: 2 (default: header and typed edges) or 1 (legacy rows with "
            "wait_for, branches, delay and tool_wait_ms).",
            min=1,
        ),
    ] = None,
    force: Force = False,
) -> None:
    """Write a corpus in another tool's trace format."""
    exporters = _interop("exporters")
    if fmt not in exporters.FORMATS:
        raise _fail(f"unknown export format {fmt!r}; expected one of {_formats(exporters)}")
    extra: dict[str, Any] = {} if block_size is None else {"block_size": block_size}
    if whole:
        extra["whole"] = True
    if framing is not None:
        extra["framing"] = framing
    if separator is not None:
        extra["separator"] = separator
    if version is not None:
        extra["version"] = version
    with _status(f"exporting {fmt}"), ops.replacing(output, force=force, inputs=[file]) as tmp:
        report = exporters.run(fmt, file, tmp, **extra)
    counts = [
        _plural(getattr(report, name), name[:-1])
        for name in ("sessions", "turns", "files")
        if getattr(report, name, None) is not None
    ]
    out.print(f"wrote {escape(str(output))}" + (f": {', '.join(counts)}" if counts else ""))
    for line in getattr(report, "warnings", None) or []:
        err.print(f"[yellow]warning:[/] {escape(str(line))}")


def main() -> None:
    """Console-script entry point."""
    app()
