"""Writing corpus files, all at once (imports) or as turns happen (capture).

Pending records become one zstd frame on `flush()`. With `flush_every` set, `add_turn`,
`open_session` and `close_session` flush by themselves once that many seconds have passed since
the last frame, and a capture also calls `flush()` from a timer, so a killed process loses at
most the last interval. The keys sidecar is saved before each frame, so a frame never names a
block id the sidecar lacks.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from corpus import columns as col
from corpus.errors import CorpusError, DamagedError
from corpus.frames import compress, pieces
from corpus.keys import Keys
from corpus.reader import Reader
from corpus.records import (
    AFTER,
    MAGIC,
    MAX_BATCH,
    OPTIONAL,
    PLAIN,
    Close,
    Column,
    Header,
    Open,
    Record,
    Turn,
    Turns,
)

# Bounded frames (damage loses at most the frame it hits): a frame ends at `max_turns` turns
# (default 16,384) or when it would compress to more than about FRAME_BYTES (estimated from the
# frames written so far), whichever comes first. Within a frame, turns go in `Turns` records of
# at most BATCH_TURNS, so a file cut inside a frame still keeps the complete records before the
# cut. Smaller frames or records compress worse (each column is cut into shorter runs); these
# sizes keep the bundled corpora within their size target (benchmarks/bench_corpus.py).
# A file whose turns all fit its first frame (written at once: most imports) would be one
# frame, lost whole to one flipped byte: with at least SPREAD_TURNS turns it is written at close
# as SPREAD frames of two records each instead.
FRAME_BYTES = 256 << 10
MIN_FRAME_TURNS = 256
BATCH_TURNS = 4096
SPREAD_TURNS = 2048
SPREAD = 4
_TIME = 1 << 62  # microseconds that still fit the int64 time columns
_TIME_S = float(_TIME // 10**6)  # the same bound in seconds, a little inside it


def _bounds(name: str, spec: Column) -> tuple[float, float]:
    """[low, high) of the values plain field `name` can store faithfully: times in seconds,
    counts within their dtype; an optional field stored with `missing` 0 must not be 0 (it
    would read back as None)."""
    if spec.time:
        return 0.0, _TIME_S
    info = np.iinfo(np.dtype(spec.dtype))
    low = 1 if name in OPTIONAL and spec.missing == 0 else 0
    return low, int(info.max) + 1


_BOUNDS = [(name, *_bounds(name, spec), name in OPTIONAL) for name, spec in PLAIN.items()]


def _ok(turn: Turn) -> bool:
    """The common case of `_check` (it runs for every recorded turn). NaN compares False."""
    for name, low, high, optional in _BOUNDS:
        value = getattr(turn, name)
        if value is None:
            if not optional:
                return False
        elif not low <= value < high:
            return False
    return turn.after in AFTER


def _check(turn: Turn) -> None:
    """Refuse what the columns can't store faithfully (instead of failing at flush time or
    silently reading back as "not recorded")."""
    if _ok(turn):
        return
    bad: list[str] = []
    for name, low, high, optional in _BOUNDS:
        value = getattr(turn, name)
        if value is None:
            if not optional:
                bad.append(f"{name}=None")
        elif not low <= value < high:
            if PLAIN[name].time:
                none = ", or None" if name in OPTIONAL else ""
                bad.append(f"{name}={value} (expected finite seconds ≥ 0{none})")
            else:
                bad.append(f"{name}={value}")
    if turn.after not in AFTER:
        bad.append(f"after={turn.after!r} (expected one of {', '.join(AFTER)})")
    if bad:
        raise CorpusError(f"turn can't be stored: {', '.join(bad)}")


def producer() -> str:
    """`agentload <version>` for headers."""
    try:
        return f"agentload {metadata.version('agentload')}"
    except metadata.PackageNotFoundError:  # running from a source tree
        return "agentload (source)"


def _common_prefix(prev: list[int], full: list[int]) -> int:
    """Length of the longest common prefix, with C-speed slice comparisons only: agents' turns
    usually extend the previous one except for its partial last block, and a Python loop
    over a 100K-token context would cost more than the rest of the turn. The last shared
    position picks the one comparison to try first (a failed one would scan to its end)."""
    n = min(len(prev), len(full))
    if not n:
        return 0
    if prev[n - 1] == full[n - 1]:
        if (prev if n == len(prev) else prev[:n]) == full[:n]:  # `full` extends `prev`
            return n
    elif prev[: n - 1] == full[: n - 1]:  # only the partial tail block changed
        return n - 1
    lo, hi = 0, n - 1  # prev[:lo] == full[:lo]; the first difference is before hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if prev[lo:mid] == full[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class Writer:
    """Writes one corpus file. Use as a context manager, or call `close()`.

    Two constructors: `Writer.create(path, header)` (also plain `Writer(path, header)`) starts
    a new file and refuses to overwrite one; `Writer.append(path)` continues an existing file
    (its header wins; session ids continue after the highest one in it). `keys=True` keeps the
    private `<file>.keys` sidecar (needed for consistent ids across appends); `keys=False` uses
    a throwaway key (appending with it gives new content ids after every id in the file, so
    nothing is falsely shared); a `Keys` object (`create` only) is used as given (a copy that
    keeps the id space of its source).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: Header | None = None,
        *,
        keys: bool | Keys = True,
        flush_every: float | None = None,
        max_turns: int = 16_384,
        level: int = 9,
    ) -> None:
        self._setup(path, flush_every, max_turns, level)
        if self.path.exists() and self.path.stat().st_size > 0:
            raise CorpusError(f"{self.path}: already exists; choose another output or append to it")
        header = header or Header()
        self.header = msgspec.structs.replace(
            header,
            magic=MAGIC,
            created=header.created or Header.today(),
            producer=header.producer or producer(),
        )
        if isinstance(keys, Keys):
            self.keys = keys
        elif keys:
            stale = Path(f"{self.path}.keys")
            if stale.exists():  # a sidecar without its corpus: start a fresh id space
                stale.unlink()
            self.keys = Keys.open(self.path)
        else:
            self.keys = Keys.ephemeral()
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._pending.append(self.header)
        try:
            self.flush(force=True)
        except BaseException:
            self._file.close()
            raise

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], header: Header | None = None, **options: Any
    ) -> Writer:
        """A new corpus at `path` (which must not exist, or be empty) starting with `header`;
        `options` as for `Writer(...)`."""
        return cls(path, header, **options)

    @classmethod
    def append(
        cls,
        path: str | os.PathLike[str],
        *,
        block_size: int | None = None,
        keys: bool = True,
        flush_every: float | None = None,
        max_turns: int = 16_384,
        level: int = 9,
    ) -> Writer:
        """Continue the intact corpus at `path`; `block_size`, when given, must be the file's."""
        self = cls.__new__(cls)
        self._setup(path, flush_every, max_turns, level)
        reader = Reader(self.path, strict=True)
        header = reader.header
        if block_size is not None and block_size != header.block_size:
            raise CorpusError(
                f"{self.path}: existing corpus uses {header.block_size}-token blocks, "
                f"this writer was asked for {block_size}; write a new file instead"
            )
        top = -1  # highest block id in the file
        try:
            for frame in reader.frames():
                for rec in frame.records:
                    if isinstance(rec, Open):
                        self._next_id = max(self._next_id, rec.id + 1)
                    elif isinstance(rec, Turns):
                        ids = reader.batch(frame, rec).blocks
                        if ids.size:
                            top = max(top, int(ids.max()))
        except DamagedError as exc:
            raise type(exc)(
                f"can't append: {exc}", intact_frames=exc.intact_frames, offset=exc.offset
            ) from exc
        if keys:
            self.keys = Keys.open(self.path, create=False)
            if len(self.keys) <= top:
                raise CorpusError(
                    f"{self.keys.path}: knows {len(self.keys)} block ids, but the corpus "
                    f"uses ids up to {top}; this sidecar does not belong to {self.path}. "
                    "Append with keys=False or write a new corpus"
                )
        else:
            self.keys = Keys.ephemeral(base=top + 1)
        self.header = header
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        return self

    def _setup(
        self, path: str | os.PathLike[str], flush_every: float | None, max_turns: int, level: int
    ) -> None:
        """State both constructors share."""
        self.path = Path(path)
        if not 1 <= max_turns <= MAX_BATCH:
            raise ValueError(f"max_turns must be in 1..{MAX_BATCH}, got {max_turns}")
        self.flush_every = flush_every
        self.max_turns = max_turns
        self._frame_turns = max_turns  # this frame's bound (FRAME_BYTES, once estimated)
        self._wrote_turns = False  # a frame of turns has been written
        self.level = level
        self.sessions = 0
        self.turns = 0
        self.frames = 0
        self._next_id = 0
        self._pending: list[Record] = []
        self._rows: list[tuple[int, Turn]] = []
        self._closing: list[int] = []
        self._last: dict[int, list[int]] = {}  # open session -> its last turn's block ids
        self._count: dict[int, int] = {}  # open session -> turns written (for error messages)
        self._flushed_at = time.monotonic()

    # -- sessions and turns ---------------------------------------------------------------

    def open_session(
        self,
        *,
        start: float = 0.0,
        model: str = "",
        api: str = "",
        agent: str = "",
        parent: int | None = None,
        domain: str = "",
    ) -> int:
        """Begin a session `start` seconds after the corpus's first one; returns its id.
        `domain` is needed only when it differs from the header's (a merged corpus)."""
        if not math.isfinite(start):
            raise CorpusError(f"session start must be a finite time, got {start}")
        if parent is not None and not 0 <= parent < self._next_id:
            raise CorpusError(f"parent session {parent} has not been opened in this corpus")
        sid = self._next_id
        self._next_id += 1
        self._pending.append(
            Open(
                id=sid,
                start=start,
                model=model,
                api=api,
                agent=agent,
                parent=parent,
                domain="" if domain == self.header.domain else domain,
            )
        )
        self._last[sid] = []
        self.sessions += 1
        self._tick()
        return sid

    def add_turn(self, session: int, turn: Turn, blocks: Sequence[int]) -> None:
        """Record `turn` of `session`; `blocks` is its full block-id list (the writer stores
        only what differs from the session's previous turn)."""
        prev = self._last.get(session)
        if prev is None:
            raise CorpusError(f"session {session} is not open in this writer")
        full = list(blocks)
        reuse = _common_prefix(prev, full)
        new = tuple(full[reuse:])
        try:
            _check(turn)
            if new and not 0 <= min(new) <= max(new) < 1 << 63:
                raise CorpusError(f"block ids must be in 0..2**63-1, got {min(new)}..{max(new)}")
        except CorpusError as exc:  # nothing of this turn was kept; the session stays open
            raise CorpusError(
                f"session {session}, turn {self._count.get(session, 0)}: {exc}"
            ) from None
        self._rows.append((session, msgspec.structs.replace(turn, reuse=reuse, blocks=new)))
        self._last[session] = full
        self._count[session] = self._count.get(session, 0) + 1
        self.turns += 1
        if len(self._rows) >= self._frame_turns:
            self.flush()
        else:
            self._tick()

    def close_session(self, session: int) -> None:
        """No more turns for `session`."""
        self._count.pop(session, None)
        if self._last.pop(session, None) is None:
            raise CorpusError(f"session {session} is not open in this writer")
        self._closing.append(session)
        self._tick()

    def relative(self, unix_time: float) -> float:
        """Seconds since the corpus's first session (the first call sets that origin)."""
        self.keys.set_epoch(unix_time)
        assert self.keys.epoch is not None
        return unix_time - self.keys.epoch

    # -- frames ---------------------------------------------------------------------------

    def _tick(self) -> None:
        if self.flush_every is not None and (
            time.monotonic() - self._flushed_at >= self.flush_every
        ):
            self.flush()

    def flush(self, *, force: bool = False) -> None:
        """Write everything pending as one frame (no-op when nothing is pending)."""
        records = [*self._pending]  # a failed write must leave the pending state as it was
        step = BATCH_TURNS
        for i in range(0, len(self._rows), step):
            records.append(col.encode(self._rows[i : i + step]))
        if self._closing:
            records.append(Close(ids=self._closing))
        if not records and not force:
            self._flushed_at = time.monotonic()
            return
        size = self._write(records)
        if len(self._rows) >= MIN_FRAME_TURNS:  # a timed flush of a few turns says little
            fit = int(FRAME_BYTES * len(self._rows) / size)
            self._frame_turns = max(MIN_FRAME_TURNS, min(self.max_turns, fit))
        self._pending, self._rows, self._closing = [], [], []
        self._flushed_at = time.monotonic()

    def _write(self, records: list[Record]) -> int:
        """Write `records` as one frame; returns its size in bytes."""
        self.keys.save()
        data = compress(pieces(records), self.level)
        self._file.write(data)
        self._file.flush()
        self.frames += 1
        self._wrote_turns = self._wrote_turns or any(isinstance(r, Turns) for r in records)
        return len(data)

    def _spread(self) -> None:
        """At close: when no frame of turns was written yet and many are pending (a file
        written at once), write them as SPREAD frames. Each frame opens the sessions first seen
        in it and closes those last seen in it, so damage to one frame loses only its turns."""
        rows = self._rows
        if self._wrote_turns or self.flush_every is not None or len(rows) < SPREAD_TURNS:
            return
        step = -(-len(rows) // SPREAD)
        chunks = [rows[i : i + step] for i in range(0, len(rows), step)]
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for k, chunk in enumerate(chunks):
            for sid, _ in chunk:
                first.setdefault(sid, k)
                last[sid] = k
        opens: list[list[Record]] = [[] for _ in chunks]
        for rec in self._pending:
            opens[first.get(rec.id, 0) if isinstance(rec, Open) else 0].append(rec)
        closes: list[list[int]] = [[] for _ in chunks]
        for sid in self._closing:
            closes[last.get(sid, len(chunks) - 1)].append(sid)
        half = -(-step // 2)
        for k, chunk in enumerate(chunks):
            records = [*opens[k]]
            records += [col.encode(chunk[i : i + half]) for i in range(0, len(chunk), half)]
            if closes[k]:
                records.append(Close(ids=closes[k]))
            self._write(records)
        self._pending, self._rows, self._closing = [], [], []

    def close(self) -> None:
        """Flush and close. Sessions still open stay open in the file (readers yield them)."""
        if self._file.closed:
            return
        try:
            self._spread()
            self.flush()
        finally:
            self._file.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
