"""Deep checks of a corpus file (`corpus validate`): every invariant a reader relies on.

One streaming pass; memory is bounded by the sessions open at once. Each problem names the
frame and byte offset it was found at. Only the first `limit` problems of each kind are kept
as messages; `counts` has them all.
"""

from __future__ import annotations

import datetime
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from corpus import columns as col
from corpus.reader import Reader
from corpus.records import AFTER, VERSION, Close, Header, Open, Turns

Progress = Callable[[int, int], None]


@dataclass
class Validation:
    """Outcome of `validate`: `problems` are messages (capped per kind), `counts` the number
    of problems of each kind."""

    path: str
    frames: int = 0
    sessions: int = 0
    turns: int = 0
    problems: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    note: str | None = None  # records of kinds this version does not know (not a problem)

    @property
    def ok(self) -> bool:
        return not self.counts

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class _Checker:
    def __init__(self, path: str, block_size: int, limit: int) -> None:
        self.result = Validation(path)
        self.bs = block_size
        self.limit = limit
        self.where = ""
        self.opened: set[int] = set()
        self.closed: set[int] = set()
        self.blocks: dict[int, int] = {}  # open session -> block count of its last turn
        self.nturns: dict[int, int] = {}  # open session -> turns so far
        self.parents: dict[int, int] = {}

    def problem(self, kind: str, message: str) -> None:
        self.result.counts[kind] += 1
        if self.result.counts[kind] <= self.limit:
            self.result.problems.append(f"{self.where}{message}")

    def header(self, h: Header) -> None:
        if h.version < 1 or h.version > VERSION:
            self.problem("header", f"format version {h.version} (expected 1..{VERSION})")
        if h.block_size < 1:
            self.problem("header", f"block_size {h.block_size} (expected ≥ 1)")
        if not h.tokenizer:
            self.problem("header", "no tokenizer named")
        if h.created:
            try:
                datetime.date.fromisoformat(h.created)
            except ValueError:
                self.problem("header", f"created {h.created!r} is not a date (YYYY-MM-DD)")

    def open(self, rec: Open) -> None:
        if rec.id in self.opened:
            self.problem("session", f"session {rec.id} is opened twice")
            return
        self.opened.add(rec.id)
        self.blocks[rec.id] = 0
        self.nturns[rec.id] = 0
        self.result.sessions += 1
        if not math.isfinite(rec.start) or rec.start < 0:
            self.problem("time", f"session {rec.id} starts at {rec.start} (expected ≥ 0)")
        if rec.parent is not None:
            if rec.parent == rec.id:
                self.problem("session", f"session {rec.id} is its own parent")
            else:
                self.parents[rec.id] = rec.parent

    def close(self, rec: Close) -> None:
        for sid in rec.ids:
            if sid not in self.opened:
                self.problem("session", f"close of session {sid}, which was never opened")
            elif sid in self.closed:
                self.problem("session", f"session {sid} is closed twice")
            else:
                self.closed.add(sid)
                self.blocks.pop(sid, None)
                self.nturns.pop(sid, None)

    def turns(self, batch: col.Batch) -> None:
        c = batch.columns
        self.result.turns += batch.n
        self._columns(batch)
        sessions = c["session"].tolist()
        reuse = c["reuse"].tolist()
        nblocks = c["nblocks"].tolist()
        inputs = c["input"].tolist()
        bs = self.bs
        for sid, r, nb, tokens in zip(sessions, reuse, nblocks, inputs, strict=True):
            prev = self.blocks.get(sid)
            if prev is None:
                if sid in self.closed:
                    self.problem("session", f"turn of session {sid} after it was closed")
                else:
                    self.problem("session", f"turn of session {sid}, which was never opened")
                continue
            k = self.nturns[sid]
            self.nturns[sid] = k + 1
            if r > prev:
                self.problem(
                    "blocks",
                    f"session {sid} turn {k}: reuses {r} blocks, previous turn has {prev}",
                )
            full = min(r, prev) + nb
            if bs >= 1 and full != -(-tokens // bs):
                self.problem(
                    "blocks",
                    f"session {sid} turn {k}: {full} blocks for {tokens} input tokens "
                    f"(expected ⌈{tokens}/{bs}⌉ = {-(-tokens // bs)})",
                )
            self.blocks[sid] = full

    def _columns(self, batch: col.Batch) -> None:
        c = batch.columns

        def each(kind: str, mask: np.ndarray, what: str, values: np.ndarray) -> None:
            for i in np.flatnonzero(mask)[: self.limit].tolist():
                self.problem(kind, f"session {int(c['session'][i])}: {what} {values[i]}")
            extra = int(mask.sum()) - self.limit
            if extra > 0:
                self.result.counts[kind] += extra

        for name in ("input", "output", "reuse", "nblocks"):
            each("count", c[name] < 0, f"negative {name}", c[name])
        for name in ("reasoning", "usage_input", "usage_cached"):
            each("count", c[name] < -1, f"negative {name}", c[name])
        for name in ("t", "wait"):
            each("time", c[name] < 0, f"negative {name}", c[name])
        each("count", c["after"] >= len(AFTER), "unknown 'after' code", c["after"])
        if batch.blocks.size and int(batch.blocks.min()) < 0:
            bad = int((batch.blocks < 0).sum())
            self.problem("blocks", f"{bad} negative block ids")

    def finish(self) -> None:
        self.where = ""
        for sid, parent in sorted(self.parents.items()):
            if parent not in self.opened:
                self.problem(
                    "session", f"session {sid} names parent {parent}, which is not in the file"
                )


def validate(
    path: str | os.PathLike[str], *, limit: int = 20, progress: Progress | None = None
) -> Validation:
    """Check the corpus at `path`. Raises FormatError only when it has no readable header."""
    reader = Reader(path)
    check = _Checker(reader.path, reader.header.block_size, limit)
    check.header(reader.header)
    size = os.path.getsize(path)
    for frame in reader.frames():
        check.result.frames += 1
        check.where = f"frame {frame.index} at byte {frame.offset}: "
        for i, rec in enumerate(frame.records):
            if isinstance(rec, Turns):
                try:
                    batch = col.decode(rec)
                except ValueError as exc:
                    check.problem("frame", f"turn batch does not decode ({exc})")
                    continue
                check.turns(batch)
            elif isinstance(rec, Open):
                check.open(rec)
            elif isinstance(rec, Close):
                check.close(rec)
            elif isinstance(rec, Header) and (frame.index or i):
                check.problem("frame", "a second header record")
        if progress is not None:
            progress(frame.offset, size)
    check.result.note = reader.unknown_note()
    if reader.damage is not None:
        check.where = ""
        check.problem("frame", reader.damage.message(reader.path))
    check.finish()
    return check.result
