"""Whole-corpus operations: merge, select (filter), sample and salvage.

All four replay the records of their inputs into one `Writer` (`_Copy`): sessions are
renumbered in the order they open, parents follow their new ids, and block ids are mapped into
the output's id space. Memory is bounded by the sessions open at once, as for the reader.

Block ids. A corpus's ids are first-seen ranks of keyed digests, so ids from two corpora mean
the same prefix only when both used the same key and the same digest table. Outputs therefore:
- keep the id space when every input has a `<file>.keys` sidecar with one shared key (the same
  corpus, or copies of it that were appended to separately): ids are unified through the
  digests, the output gets a sidecar with that key, and later captures into it stay consistent;
- otherwise make the inputs' ids disjoint (each input's blocks get fresh ids), so no two
  inputs ever appear to share a prefix; a merge needs `disjoint=True` to accept that loss of
  cross-input sharing, and the output has no sidecar (append to it only with `keys=False`).

Outputs replace their target only when complete (written beside it, then renamed), and only
with `force=True`; an input is never an output.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from corpus import columns as col
from corpus.errors import CorpusError, FormatError
from corpus.frames import Frame, Problem, resync, scan
from corpus.keys import Keys, sidecar
from corpus.reader import Damage, Reader, batch
from corpus.records import Close, Header, Open, Record, Turns, Unknown
from corpus.writer import Writer

Progress = Callable[[int, int], None]
"""Called with (bytes of input done, bytes of input in all)."""


@dataclass
class Copied:
    """What an operation wrote."""

    sessions: int
    turns: int
    frames: int
    keys: bool  # whether the output has a keys sidecar (its id space can be appended to)
    of_sessions: int = 0  # sessions in the input(s)


@dataclass
class Salvaged(Copied):
    """What `salvage` kept, and where the input was damaged."""

    damage: list[Damage] = field(default_factory=list)
    frames_kept: int = 0  # intact input frames copied
    records_recovered: int = 0  # complete records taken from damaged frames' readable prefixes
    sessions_cut: int = 0  # sessions open at a damaged spot: kept up to it, left unclosed
    turns_dropped: int = 0  # turns after a damaged spot whose session was cut


# -- output files -----------------------------------------------------------------------------


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def replacing(
    out: str | os.PathLike[str], *, force: bool = False, inputs: Iterable[os.PathLike[str]] = ()
) -> Iterator[Path]:
    """A temporary path beside `out` to write into; on success it becomes `out` (with its
    `.keys` sidecar, and any stale sidecar of `out` removed), on failure it is deleted.
    Refuses an existing `out` unless `force`, and never lets `out` be one of `inputs`."""
    target = Path(out)
    if target.exists():
        for src in inputs:
            if Path(src).exists() and os.path.samefile(target, src):
                raise CorpusError(f"{target}: is also an input; write the output elsewhere")
        if not force:
            raise CorpusError(f"{target}: already exists; pass --force to replace it")
    if not target.parent.is_dir():
        raise CorpusError(f"{target.parent}: no such directory")
    tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")
    tmp_keys = sidecar(tmp)
    for path in (tmp, tmp_keys):
        _remove(path)
    try:
        yield tmp
    except OSError as exc:
        for path in (tmp, tmp_keys):
            _remove(path)
        if exc.filename is not None and Path(exc.filename) not in (tmp, tmp_keys):
            raise  # an input's error names its own file
        # a full disk: name the output, not the temporary file that was being written
        raise CorpusError(
            f"{target}: cannot write it ({exc.strerror or exc}); nothing was written there"
        ) from exc
    except BaseException:
        for path in (tmp, tmp_keys):
            _remove(path)
        raise
    old_keys = sidecar(target)
    _remove(old_keys)  # first, so a crash below never pairs the new corpus with old keys
    if tmp.is_dir() and target.exists():
        _remove(target)
    os.replace(tmp, target)
    if tmp_keys.exists():
        os.replace(tmp_keys, old_keys)


# -- the copy engine --------------------------------------------------------------------------

BlockMap = Callable[[int], int]


def _digest_map(src: Path, keys: Keys, out: Keys, remedy: str) -> BlockMap:
    """Input id -> output id through the digests both sidecars share."""
    digests = keys.digests()

    def block(i: int) -> int:
        if not 0 <= i < len(digests):
            raise CorpusError(
                f"{src}: block id {i} is not in its keys sidecar, which knows {len(digests)} "
                "ids (the corpus was appended to without it, or the sidecar belongs to another "
                f"corpus); {remedy}"
            )
        return out.id(digests[i])

    return block


def _disjoint_map(index: int, out: Keys) -> BlockMap:
    """Input id -> a fresh output id, distinct from every other input's (through `out`, so ids
    stay first-seen ranks of the output)."""
    prefix = index.to_bytes(4, "little")
    return lambda i: out.id(prefix + i.to_bytes(8, "little", signed=True))


class _Copy:
    """Replays input records into `writer`: kept sessions are opened in input order with new
    ids, their turns follow with block ids mapped, and everything else is skipped."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.skipped = 0  # turns of sessions not open (not kept, or cut by damage)
        self.unknown: Counter[str] = Counter()  # records of kinds this version does not know

    def source(
        self,
        path: Path,
        domain: str,
        block: BlockMap,
        keep: Container[int] | None = None,
        shift: float = 0.0,
    ) -> None:
        """Start copying from another input (`domain` is its header's)."""
        self.path, self.domain, self.block, self.keep, self.shift = path, domain, block, keep, shift
        self.ids: dict[int, int] = {}  # input session id -> output id, every kept session
        self.open: dict[int, list[int]] = {}  # open kept session -> its last turn's output blocks

    def records(self, records: Sequence[Record | Unknown], index: int, offset: int) -> None:
        """Copy `records` of the input's frame `index` at byte `offset`. Records of kinds this
        version does not know are not copied (they may name input session ids): counted in
        `unknown`."""
        w = self.writer
        for rec in records:
            if isinstance(rec, Turns):
                for sid, turn in col.turns(batch(self.path, index, offset, rec)):
                    prev = self.open.get(sid)
                    if prev is None:
                        self.skipped += 1
                        continue
                    full = prev[: turn.reuse] + [self.block(b) for b in turn.blocks]
                    w.add_turn(self.ids[sid], turn, full)
                    self.open[sid] = full
            elif isinstance(rec, Open):
                if self.keep is not None and rec.id not in self.keep:
                    continue
                self.ids[rec.id] = w.open_session(
                    start=rec.start + self.shift,
                    model=rec.model,
                    api=rec.api,
                    agent=rec.agent,
                    # a kept sub-agent whose parent was not kept becomes a top-level session
                    parent=None if rec.parent is None else self.ids.get(rec.parent),
                    domain=rec.domain or self.domain,
                )
                self.open[rec.id] = []
            elif isinstance(rec, Close):
                for sid in rec.ids:
                    if self.open.pop(sid, None) is not None:
                        w.close_session(self.ids[sid])
            elif isinstance(rec, Unknown):
                self.unknown[rec.kind] += 1

    def cut(self) -> int:
        """Stop copying every open session (damage: later turns can't be trusted to follow
        their lost predecessors); they stay unclosed in the output. Returns how many."""
        n = len(self.open)
        self.open.clear()
        return n


def _frames(reader: Reader, progress: Progress | None, done: int, total: int) -> Iterator[Frame]:
    for frame in reader.frames():
        yield frame
        if progress is not None:
            progress(done + frame.offset, total)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _keys_of(path: Path) -> Keys | None:
    return Keys.open(path, create=False) if sidecar(path).exists() else None


def _id_space(src: Path, keys: Keys | None, tmp: Path) -> tuple[Keys, BlockMap]:
    """Output keys and block map for a copy of one corpus: its own id space when it has a
    sidecar (`keys`), else fresh ids and no sidecar."""
    if keys is None:
        out = Keys.ephemeral()
        return out, _disjoint_map(0, out)
    out = Keys.create(tmp, key=keys.key, epoch=keys.epoch)
    return out, _digest_map(src, keys, out, "pass --no-keys to give the output fresh ids")


def _note(header: Header, line: str) -> Header:
    notes = f"{header.notes}\n{line}" if header.notes else line
    return msgspec.structs.replace(header, notes=notes)


# -- operations -------------------------------------------------------------------------------


def merge(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    disjoint: bool = False,
    domain: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Copied:
    """One corpus holding every session of `inputs`, in input order, renumbered. Inputs must
    agree on block size and tokenizer. Block ids are unified when all inputs share one keys
    sidecar key; otherwise `disjoint=True` is required (see the module docstring). With shared
    keys, session starts are shifted onto the earliest input's time origin. Sessions keep
    their input's domain; the header's is `domain`, else the common one, else "mixed"."""
    paths = [Path(p) for p in inputs]
    if not paths:
        raise CorpusError("merge needs at least one input")
    readers = [Reader(p, strict=True) for p in paths]
    first = readers[0].header
    for r in readers[1:]:
        for name in ("block_size", "tokenizer"):
            if getattr(r.header, name) != getattr(first, name):
                raise CorpusError(
                    f"{r.path}: {name} is {getattr(r.header, name)!r}, but {readers[0].path} "
                    f"has {getattr(first, name)!r}; corpora with different {name}s can't be merged"
                )
    keys = [_keys_of(p) for p in paths]
    key = keys[0].key if keys[0] is not None else None
    shared = key is not None and all(k is not None and k.key == key for k in keys)
    if len(paths) > 1 and not shared and not disjoint:
        raise CorpusError(
            "the inputs were not written with one shared keys sidecar key, so their block ids "
            "can't be unified; pass --disjoint to merge with disjoint block ids (no prefix is "
            "shared across inputs)"
        )
    header = _merged_header([r.header for r in readers], domain)
    epochs = [k.epoch for k in keys if k is not None and k.epoch is not None]
    origin = min(epochs) if shared and epochs else None
    total = sum(_size(p) for p in paths)
    with replacing(out, force=force, inputs=paths) as tmp:
        out_keys = Keys.create(tmp, key=key, epoch=origin) if shared else Keys.ephemeral()
        with Writer(tmp, header, keys=out_keys) as writer:
            copy = _Copy(writer)
            done = 0
            for i, (path, reader, k) in enumerate(zip(paths, readers, keys, strict=True)):
                block = (
                    _digest_map(path, k, out_keys, "move that sidecar away and pass --disjoint")
                    if shared and k
                    else _disjoint_map(i, out_keys)
                )
                shift = 0.0
                if origin is not None and k is not None and k.epoch is not None:
                    shift = k.epoch - origin
                copy.source(path, reader.header.domain, block, shift=shift)
                for frame in _frames(reader, progress, done, total):
                    copy.records(frame.records, frame.index, frame.offset)
                done += _size(path)
        return Copied(writer.sessions, writer.turns, writer.frames, shared, writer.sessions)


def _merged_header(headers: list[Header], domain: str | None) -> Header:
    def common(name: str, mixed: str) -> str:
        values = {getattr(h, name) for h in headers}
        return values.pop() if len(values) == 1 else mixed

    licences = sorted({h.license for h in headers if h.license})
    created = sorted(h.created for h in headers if h.created)
    return Header(
        domain=domain or common("domain", "mixed"),
        tokenizer=headers[0].tokenizer,
        block_size=headers[0].block_size,
        created=created[0] if created else "",
        source=common("source", "merge"),
        license=licences[0] if len(licences) == 1 else " AND ".join(f"({x})" for x in licences),
        notes=f"merge of {len(headers)} corpora",
    )


def _copy_one(
    reader: Reader,
    out: str | os.PathLike[str],
    keep: set[int],
    note: str,
    *,
    keys: bool,
    force: bool,
    progress: Progress | None,
    of_sessions: int,
) -> Copied:
    src = Path(reader.path)
    in_keys = _keys_of(src) if keys else None
    with replacing(out, force=force, inputs=[src]) as tmp:
        out_keys, block = _id_space(src, in_keys, tmp)
        with Writer(tmp, _note(reader.header, note), keys=out_keys) as writer:
            copy = _Copy(writer)
            copy.source(src, reader.header.domain, block, keep=keep)
            for frame in _frames(reader, progress, 0, _size(src)):
                copy.records(frame.records, frame.index, frame.offset)
        return Copied(
            writer.sessions, writer.turns, writer.frames, in_keys is not None, of_sessions
        )


def select(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    domain: str | None = None,
    model: str | None = None,
    agent: str | None = None,
    min_turns: int | None = None,
    max_turns: int | None = None,
    keys: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> Copied:
    """The sessions of `src` that match every given criterion (`domain`, `model`, `agent` are
    shell-style patterns, e.g. `claude-*`; turn bounds are inclusive). Each session is judged
    on its own: a kept sub-agent whose parent is dropped becomes a top-level session. With
    `keys`, the output keeps the input's id space (a copy of its sidecar)."""
    reader = Reader(src, strict=True)
    table = reader.table()
    ids = table.sessions["id"]
    mask = np.ones(ids.shape[0], dtype=bool)
    criteria: list[str] = []
    for name, pattern in (("domain", domain), ("model", model), ("agent", agent)):
        if pattern is None:
            continue
        hit = np.array([fnmatch.fnmatchcase(v, pattern) for v in table.vocab], dtype=bool)
        mask &= hit[table.sessions[name]] if hit.size else False
        criteria.append(f"{name}={pattern}")
    if min_turns is not None or max_turns is not None:
        counts = _turn_counts(table.turns["session"], ids)
        if min_turns is not None:
            mask &= counts >= min_turns
            criteria.append(f"min_turns={min_turns}")
        if max_turns is not None:
            mask &= counts <= max_turns
            criteria.append(f"max_turns={max_turns}")
    keep = set(ids[mask].tolist())
    note = f"filter: {', '.join(criteria) or 'all'} ({len(keep)} of {ids.shape[0]} sessions)"
    return _copy_one(
        reader,
        out,
        keep,
        note,
        keys=keys,
        force=force,
        progress=progress,
        of_sessions=int(ids.shape[0]),
    )


def _turn_counts(turn_session: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Turns per session, aligned with the sorted session `ids`."""
    if not ids.size:
        return np.zeros(0, dtype=np.int64)
    pos = np.searchsorted(ids, turn_session)
    pos = pos[(pos < ids.size) & (ids[np.minimum(pos, ids.size - 1)] == turn_session)]
    return np.bincount(pos, minlength=ids.size)


def sample(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    n: int,
    seed: int,
    keys: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> Copied:
    """`n` top-level sessions of `src` drawn uniformly without replacement (all of them when
    there are fewer), each with all its sub-agents. The same file and seed give the same
    sample."""
    if n < 0:
        raise CorpusError(f"sample size must be ≥ 0, got {n}")
    reader = Reader(src, strict=True)
    table = reader.table()
    ids = table.sessions["id"]
    parents = table.sessions["parent"]
    known = set(ids.tolist())
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for sid, parent in zip(ids.tolist(), parents.tolist(), strict=True):
        if parent >= 0 and parent in known and parent != sid:
            children.setdefault(parent, []).append(sid)
        else:
            roots.append(sid)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.array(roots, dtype=np.int64), size=min(n, len(roots)), replace=False)
    keep: set[int] = set()
    stack = chosen.tolist()
    while stack:
        sid = stack.pop()
        if sid not in keep:
            keep.add(sid)
            stack.extend(children.get(sid, ()))
    note = f"sample: {len(chosen)} of {len(roots)} top-level sessions, seed {seed}"
    return _copy_one(
        reader,
        out,
        keep,
        note,
        keys=keys,
        force=force,
        progress=progress,
        of_sessions=int(ids.shape[0]),
    )


def salvage(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    keys: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> Salvaged:
    """Rewrite what can be trusted of a damaged corpus: every intact frame, the complete
    records of a damaged frame's readable prefix, and intact frames after a damaged region
    (found again by their zstd magic). Sessions open at a damaged spot keep their turns up to
    it and are left unclosed; their later turns are dropped, since a turn's blocks build on
    its predecessors. The header must be readable. With `keys`, the output keeps the input's
    id space (a copy of its sidecar)."""
    path = Path(src)
    header = Reader(path).header
    in_keys = _keys_of(path) if keys else None
    total = _size(path)
    result = Salvaged(0, 0, 0, in_keys is not None)
    with replacing(out, force=force, inputs=[path]) as tmp:
        out_keys, block = _id_space(path, in_keys, tmp)
        with Writer(tmp, header, keys=out_keys) as writer:
            copy = _Copy(writer)
            copy.source(path, header.domain, block)
            start: int | None = 0
            index = opened = 0
            while start is not None:
                items = scan(path, start=start, index=index)
                start = None
                for item in items:
                    if isinstance(item, Frame):
                        records = item.records
                        result.frames_kept += 1
                    else:
                        result.damage.append(
                            Damage(
                                item.kind, item.index, item.offset, item.detail, result.frames_kept
                            )
                        )
                        records = item.partial  # only what can be trusted (see Problem)
                        result.records_recovered += len(records)
                    opened += sum(isinstance(r, Open) for r in records)
                    try:
                        copy.records(records, item.index, item.offset)
                    except FormatError as exc:  # an inconsistent turn batch in an intact frame
                        result.damage.append(
                            Damage("corrupt", item.index, item.offset, str(exc), result.frames_kept)
                        )
                        result.sessions_cut += copy.cut()
                    if isinstance(item, Problem):
                        result.sessions_cut += copy.cut()
                        start, index = resync(path, item.offset), item.index + 1
                    if progress is not None:
                        progress(item.offset, total)
        result.sessions, result.turns, result.frames = writer.sessions, writer.turns, writer.frames
        result.of_sessions = opened
        result.turns_dropped = copy.skipped
        if not result.turns:  # leaves `out` as it was
            d = result.damage[0] if result.damage else None
            where = f" (frame {d.frame} at byte {d.offset} is {d.kind})" if d else ""
            raise CorpusError(
                f"{path}: no turn is intact{where}, so there is nothing to salvage; "
                f"{out} was not written"
            )
        return result
