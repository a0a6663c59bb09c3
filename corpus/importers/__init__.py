"""Importers: other tools' traces and recordings -> an anonymized corpus file.

`run(fmt, sources, out)` reads `sources` (files or folders) in format `fmt` and writes a new
corpus. Hash-only formats (mooncake, agentic-mooncake, weka, bailian) keep their own block ids
and block size; content formats (agentperf-local, mini-swe-agent, conversations) and agent logs
(claude-code, codex) go through the same anonymizer as capture and honour any `block_size`;
count-only formats (otel, dynamo, tracelab) make blocks up from their cache-read counts. A source
that is not the declared format raises `SourceError`; a bad record inside an otherwise usable
source is left out and listed in `Report.skipped`. See `corpus/importers/README.md` for each
format's rules.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType

from corpus.anonymizer import Anonymizer
from corpus.errors import CorpusError, SourceError
from corpus.importers import (
    agentic,
    agentperf,
    bailian,
    claude_code,
    codex,
    conversations,
    dynamo,
    miniswe,
    mooncake,
    otel,
    tracelab,
    weka,
)
from corpus.importers.base import Imported, Report
from corpus.keys import sidecar
from corpus.records import DEFAULT_BLOCK_SIZE, Header
from corpus.writer import Writer

_MODULES: dict[str, ModuleType] = {
    "agentic-mooncake": agentic,
    "agentperf-local": agentperf,
    "bailian": bailian,
    "claude-code": claude_code,
    "codex": codex,
    "conversations": conversations,
    "dynamo": dynamo,
    "mini-swe-agent": miniswe,
    "mooncake": mooncake,
    "otel": otel,
    "tracelab": tracelab,
    "weka": weka,
}
FORMATS: tuple[str, ...] = tuple(sorted(_MODULES))


def module(fmt: str) -> ModuleType:
    """The importer module of `fmt`."""
    try:
        return _MODULES[fmt]
    except KeyError:
        raise CorpusError(
            f"unknown import format {fmt!r}; expected one of {', '.join(FORMATS)}"
        ) from None


def run(
    fmt: str,
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    domain: str | None = None,
    block_size: int | None = None,
    level: int = 19,
    progress: Callable[[int, int], None] | None = None,
    license: str = "",
    notes: str = "",
    keys: bool = True,
) -> Report:
    """Import `sources` (format `fmt`) into the new corpus `out` and report what was written.

    `block_size` re-blocks content formats (default 64); hash formats only accept their own.
    `progress(done, total)` is called after every session with the source bytes read so far
    and in all (a whole file counts once it has been read). `keys=False` writes no `.keys`
    sidecar (the corpus can't be appended to with consistent ids, and can't be linked back to
    content by anyone). On any error the partial output is removed.
    """
    mod = module(fmt)
    paths = [Path(s) for s in sources]
    if not paths:
        raise SourceError(f"import {fmt}: no sources given")
    native = mod.native_block_size(paths)
    if native is not None and block_size is not None and block_size != native:
        raise SourceError(
            f"{fmt} sources carry {native}-token hash blocks and no text, so they can't be "
            f"re-blocked to {block_size}; leave out --block-size"
        )
    if block_size is not None and block_size < 1:
        raise SourceError(f"block size must be ≥ 1, got {block_size}")
    bs = native or block_size or DEFAULT_BLOCK_SIZE
    header = Header(
        domain=domain or mod.DOMAIN,
        block_size=bs,
        source=f"import:{fmt}",
        license=license,
        notes="; ".join(n for n in (notes, mod.NOTES) if n),
    )
    out = Path(out)
    report = Report(format=fmt, out=out)
    if out.exists():
        raise CorpusError(f"{out}: already exists; choose another output or remove it first")
    total = sum(p.stat().st_size for p in mod.files(paths))
    try:
        with Writer(out, header, keys=keys, level=level) as writer:
            anon = Anonymizer(writer.keys, block_size=bs)
            _write(mod.sessions(paths, anon, report), writer, report, progress, total)
        if report.sessions == 0:
            first = f"; first problem: {report.skipped[0]}" if report.skipped else ""
            raise SourceError(
                f"no {fmt} sessions found in {', '.join(map(str, paths))}{first}; "
                "is this the right format?"
            )
    except OSError as exc:
        out.unlink(missing_ok=True)
        sidecar(out).unlink(missing_ok=True)
        if exc.filename is not None and Path(exc.filename) not in (out, sidecar(out)):
            raise  # a source's error names its own file
        raise CorpusError(f"{out}: cannot write it ({exc.strerror or exc}); removed") from exc
    except BaseException:
        out.unlink(missing_ok=True)
        sidecar(out).unlink(missing_ok=True)
        raise
    return report


def _write(
    sessions: Iterable[Imported],
    writer: Writer,
    report: Report,
    progress: Callable[[int, int], None] | None,
    total: int,
) -> None:
    ids: dict[object, int] = {}
    for sess in sessions:
        if not sess.turns:
            continue
        parent = ids.get(sess.parent) if sess.parent is not None else None
        sid = writer.open_session(
            start=sess.start, model=sess.model, api=sess.api, agent=sess.agent, parent=parent
        )
        for turn, blocks in sess.turns:
            writer.add_turn(sid, turn, blocks)
            report.turns += 1
            report.input_tokens += turn.input
            report.output_tokens += turn.output
        writer.close_session(sid)
        if sess.key is not None:
            ids[sess.key] = sid
        report.sessions += 1
        if progress is not None:
            progress(report.bytes_read, total)
    if progress is not None:
        progress(total, total)


def describe(fmt: str) -> str:
    """First line of the importer's docstring (for CLI help)."""
    return (module(fmt).__doc__ or "").strip().splitlines()[0]


__all__ = ["FORMATS", "Imported", "Report", "describe", "module", "run"]
