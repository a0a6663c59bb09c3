"""Exporters: a corpus -> other tools' trace formats, so they can replay it too.

`run(fmt, src, out)` writes `src` as `fmt`: `mooncake` (one JSONL file, with the `session_id` /
`delay` extension AIPerf and Dynamo read; later rows of a session hold what the turn adds),
`agentic-mooncake` (Dynamo's Agentic Mooncake v2: whole requests with dependency edges),
`agentperf-local` (a replay folder: manifest and one JSONL row per turn) or `weka` (a folder of
kv-cache-tester trace JSON, one file per session tree). What a format can't carry is listed in
its module docstring; caveats about this corpus come back in `Report.warnings`.
"""

from __future__ import annotations

import os
from pathlib import Path

from corpus.errors import CorpusError
from corpus.exporters import agentic, agentperf, mooncake, weka
from corpus.exporters.base import Report

FORMATS: tuple[str, ...] = ("agentic-mooncake", "agentperf-local", "mooncake", "weka")


def run(
    fmt: str,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    block_size: int | None = None,
    whole: bool = False,
    framing: int | None = None,
    separator: int | None = None,
    version: int | None = None,
) -> Report:
    """Export corpus `src` to `out` in format `fmt`. `block_size` (mooncake only) coarsens
    the blocks to a multiple of the corpus's own size, e.g. 512 for a 64-token corpus.
    `whole` (mooncake only) writes every turn's whole input instead of what it adds to the
    session (for replayers that send each row on its own). `framing` (mooncake only): tokens
    the replay server's chat template adds per message (default 5). `separator` (mooncake
    only): tokens more per hash block the replay server counts in a replayer's synthesized
    prompt (AIPerf with a tiktoken tokenizer against a server that counts text: 6). `version`
    (agentic-mooncake only): 2 (default) or the legacy 1."""
    src, out = Path(src), Path(out)
    if version is not None and fmt != "agentic-mooncake":
        raise CorpusError("a format version applies to agentic-mooncake exports only")
    if fmt == "mooncake":
        if out.exists():
            raise CorpusError(f"{out}: already exists; choose another output or remove it first")
        try:
            extra = {} if framing is None else {"framing": framing}
            if separator is not None:
                extra["separator"] = separator
            return mooncake.write(src, out, block_size=block_size, whole=whole, **extra)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    if separator is not None:
        raise CorpusError("separator tokens apply to mooncake exports only")
    if fmt == "agentic-mooncake":
        if whole or framing is not None:
            raise CorpusError(
                "agentic-mooncake rows always hold whole requests; export without whole "
                "requests or framing"
            )
        if out.exists():
            raise CorpusError(f"{out}: already exists; choose another output or remove it first")
        try:
            extra = {} if version is None else {"version": version}
            return agentic.write(src, out, block_size=block_size, **extra)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    if fmt == "agentperf-local":
        if whole or block_size is not None:
            raise CorpusError(
                "agentperf-local rows hold whole conversations and no blocks; export without "
                "a block size or whole requests"
            )
        return agentperf.write(src, out, **({} if framing is None else {"framing": framing}))
    if fmt == "weka":
        if whole:
            raise CorpusError("weka traces always hold whole requests; export without whole")
        if block_size is not None:
            raise CorpusError(
                "weka traces declare their own block size; export without a block size"
            )
        return weka.write(src, out)
    raise CorpusError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "Report", "run"]
