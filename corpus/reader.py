"""Reading corpus files: sessions as objects, or every turn as numpy columns in one pass.

Memory is bounded by the sessions open at once (a session is yielded when its `Close` record
is read, or at the end of the file when it never closed), not by the size of the corpus.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from corpus import columns as col
from corpus.errors import CorruptError, DamagedError, FormatError, TruncatedError
from corpus.frames import Frame, Problem, scan
from corpus.records import MAGIC, VERSION, Close, Header, Open, Session, Turn, Turns, Unknown


def _header(path: str, first: Frame | Problem | None) -> Header:
    if first is None:
        raise FormatError(f"{path}: empty file; not an agentload corpus")
    if isinstance(first, Problem) and not first.partial:
        if first.detail == "no zstd frame starts here":
            raise FormatError(f"{path}: not a zstd file; not an agentload corpus")
        if first.zstd_ok:
            raise FormatError(f"{path}: zstd data, but not an agentload corpus ({first.detail})")
        raise FormatError(
            f"{path}: frame 0 at byte 0 is {first.kind} ({first.detail}); no session is readable"
        )
    recs = first.records if isinstance(first, Frame) else first.partial
    head = recs[0] if recs else None
    if not isinstance(head, Header) or head.magic != MAGIC:
        raise FormatError(f"{path}: zstd data, but not an agentload corpus (no corpus header)")
    if head.version > VERSION:
        raise FormatError(
            f"{path}: file is format v{head.version}, this reader supports ≤ v{VERSION}; "
            "upgrade agentload"
        )
    return head


def batch(path: str | os.PathLike[str], index: int, offset: int, rec: Turns) -> col.Batch:
    """Decoded columns of a `Turns` record found in frame `index` at byte `offset` of `path`;
    FormatError (naming that place) when its columns are inconsistent."""
    try:
        return col.decode(rec)
    except ValueError as exc:
        raise FormatError(f"{os.fspath(path)}: frame {index} at byte {offset}: {exc}") from exc


@dataclass
class Damage:
    """Where and how a file stopped being readable."""

    kind: str
    frame: int
    offset: int
    detail: str
    intact_frames: int

    def message(self, path: str, sessions: int | None = None) -> str:
        intact = f"{self.intact_frames} frames"
        if sessions is not None:
            intact += f" and {sessions} sessions"
        return (
            f"{path}: frame {self.frame} at byte {self.offset} is {self.kind} ({self.detail}); "
            f"the {intact} before it are intact — "
            f"run 'corpus salvage {path} -o FIXED.zst' to keep them"
        )

    def error(self, path: str) -> DamagedError:
        """The exception a strict reader raises for this damage."""
        kind = TruncatedError if self.kind == "truncated" else CorruptError
        return kind(self.message(path), intact_frames=self.intact_frames, offset=self.offset)


class Reader:
    """Streaming reader. `strict=True` raises at a damaged frame instead of stopping there
    (the intact part is always yielded first); `damage` tells what was found. (`corpus salvage`
    also keeps the complete records of a damaged frame's readable prefix.)"""

    def __init__(self, path: str | os.PathLike[str], *, strict: bool = False) -> None:
        self.path = os.fspath(path)
        self.strict = strict
        self.damage: Damage | None = None
        self.unknown: Counter[str] = Counter()  # skipped records of kinds not known here
        try:
            first = next(iter(scan(self.path)), None)
        except IsADirectoryError as exc:
            raise FormatError(
                f"{self.path}: cannot read (is a directory); give a corpus file (.zst)"
            ) from exc
        except OSError as exc:
            raise FormatError(f"{self.path}: cannot read ({exc.strerror})") from exc
        self.header = _header(self.path, first)

    def frames(self) -> Iterator[Frame]:
        """Intact frames in order; stops (or raises when strict) at the first damaged one.
        Records of kinds this version does not know are left in the frames (as `Unknown`) and
        counted in `unknown` by kind."""
        self.damage = None
        self.unknown = Counter()
        count = 0
        for item in scan(self.path):
            if isinstance(item, Problem):
                self.damage = Damage(item.kind, item.index, item.offset, item.detail, count)
                if self.strict:
                    raise self.damage.error(self.path)
                return
            count += 1
            for rec in item.records:
                if isinstance(rec, Unknown):
                    self.unknown[rec.kind] += 1
            yield item

    def unknown_note(self) -> str | None:
        """What `unknown` means for a user, or None when every record was known."""
        if not self.unknown:
            return None
        kinds = ", ".join(f"{n} '{k}'" for k, n in sorted(self.unknown.items()))
        return (
            f"{self.path}: skipped records of kinds this agentload does not know ({kinds}); "
            "a newer agentload reads them, everything else here is complete"
        )

    def batch(self, frame: Frame, rec: Turns) -> col.Batch:
        """Decoded columns of a `Turns` record of `frame`; FormatError when inconsistent."""
        return batch(self.path, frame.index, frame.offset, rec)

    def sessions(self) -> Iterator[Session]:
        """Every session with its turns (on-disk `reuse`/`blocks`; see `Session.prefixes`), in
        the order they close; sessions never closed follow at the end, by id. Turns of a
        session that is not open (a damaged file) are skipped; `corpus validate` reports them."""
        meta: dict[int, Open] = {}
        turns: dict[int, list[Turn]] = {}
        for frame in self.frames():
            for rec in frame.records:
                if isinstance(rec, Turns):
                    for sid, turn in col.turns(self.batch(frame, rec)):
                        if sid in meta:
                            turns[sid].append(turn)
                elif isinstance(rec, Open):
                    meta[rec.id] = rec
                    turns[rec.id] = []
                elif isinstance(rec, Close):
                    for sid in rec.ids:
                        if sid in meta:
                            yield self._session(meta.pop(sid), turns.pop(sid))
        for sid in sorted(meta):
            yield self._session(meta[sid], turns.pop(sid))

    def table(self) -> Table:
        """All turns and sessions as numpy columns, in one pass, without per-turn objects."""
        return _table(self)

    def _session(self, meta: Open, turns: list[Turn]) -> Session:
        return Session(
            id=meta.id,
            start=meta.start,
            model=meta.model,
            api=meta.api,
            agent=meta.agent,
            parent=meta.parent,
            turns=tuple(turns),
            domain=meta.domain or self.header.domain,
        )


@dataclass
class Table:
    """Columnar view of a corpus.

    `turns[name]` are per-turn arrays in file order (names from `corpus.columns.COLUMNS`; time
    columns in float seconds, NaN when missing; optional counts -1 when missing; `stop` indexes
    `stop_vocab`, 0 = none). `blocks` holds each turn's new block ids, turn i's being
    `blocks[block_start[i]:block_start[i+1]]` after its first `turns['reuse'][i]` inherited
    ones. `sessions` has `id`, `start`, `parent` (-1 = none), `closed`, and `model`/`api`/`agent`/
    `domain` as indexes into `vocab` (`domain` filled in from the header where unset).
    """

    header: Header
    turns: dict[str, np.ndarray]
    blocks: np.ndarray
    block_start: np.ndarray
    stop_vocab: list[str]
    sessions: dict[str, np.ndarray]
    vocab: list[str] = field(default_factory=list)

    @property
    def n_turns(self) -> int:
        return int(self.turns["session"].shape[0])

    @property
    def n_sessions(self) -> int:
        return int(self.sessions["id"].shape[0])


def _table(reader: Reader) -> Table:
    batches: list[dict[str, np.ndarray]] = []
    blocks: list[np.ndarray] = []
    stop_vocab: dict[str, int] = {}
    vocab: dict[str, int] = {}
    opens: list[Open] = []
    closed: set[int] = set()
    for frame in reader.frames():
        for rec in frame.records:
            if isinstance(rec, Turns):
                decoded = reader.batch(frame, rec)
                remap = np.array(
                    [0] + [stop_vocab.setdefault(s, len(stop_vocab)) + 1 for s in decoded.vocab],
                    dtype=np.int32,
                )
                cols = dict(decoded.columns)
                cols["stop"] = remap[cols["stop"].astype(np.int64)]
                batches.append(cols)
                blocks.append(decoded.blocks)
            elif isinstance(rec, Open):
                opens.append(rec)
            elif isinstance(rec, Close):
                closed.update(rec.ids)
    if batches:
        turns = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    else:
        turns = {name: col._unpack(b"", 0, *spec) for name, spec in col.COLUMNS.items()}
        for name in col.TIMES:
            turns[name] = turns[name].astype(np.float64)
    ids = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
    start = np.zeros(turns["nblocks"].shape[0] + 1, dtype=np.int64)
    np.cumsum(turns["nblocks"], out=start[1:])
    opens.sort(key=lambda o: o.id)

    def code(s: str) -> int:
        return vocab.setdefault(s, len(vocab))

    sessions = {
        "id": np.array([o.id for o in opens], dtype=np.int64),
        "start": np.array([o.start for o in opens], dtype=np.float64),
        "parent": np.array([-1 if o.parent is None else o.parent for o in opens], dtype=np.int64),
        "closed": np.array([o.id in closed for o in opens], dtype=bool),
        "model": np.array([code(o.model) for o in opens], dtype=np.int32),
        "api": np.array([code(o.api) for o in opens], dtype=np.int32),
        "agent": np.array([code(o.agent) for o in opens], dtype=np.int32),
        "domain": np.array([code(o.domain or reader.header.domain) for o in opens], dtype=np.int32),
    }
    return Table(reader.header, turns, ids, start, list(stop_vocab), sessions, list(vocab))
