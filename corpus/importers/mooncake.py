"""Import Mooncake trace JSONL: one request per line, 512-token hash blocks, no text.

Fields: `timestamp` (ms), `input_length`, `output_length`, `hash_ids` (prefix hashes of the
input's 512-token blocks, the last one partial; ids are global within a file), and the
multi-turn extension AIPerf and Dynamo read: `session_id` and `delay` (ms to wait after the
previous request of the session finished).

Sessions:
- rows with a `session_id` form one session per id, in file order. A session replayer sends
  each later row as a new message after the conversation so far (its replies included), so
  such rows are *deltas*: the turn's input is the previous input + the previous output + this
  `input_length`, and `hash_ids` name the turn's last blocks (the earlier ones are the previous
  turn's). A session whose later rows all repeat its first block id and never shrink holds
  whole requests instead (as agentload wrote before 0.2) and is read as such. The extensions
  `corpus export mooncake` writes make the round trip exact: `block_size` (on a session's
  first row; also the file's block size), `parent_session_id` (a sub-agent's parent), and on
  later rows `context_length` (the whole input; also on a first row shortened for AIPerf's block
  separators), `prefix_blocks` (leading blocks shared with the previous turn) and
  `extra_hash_ids` (blocks between those and `hash_ids`); a session whose first row names
  another in `continues` is a restart of that one (a whole request, its wait in
  `continue_delay`) and its rows go on there.
  `t` comes from `timestamp`
  when the row has one, else accumulates the `delay`s (Mooncake records no durations, so each
  request is taken to end when it starts); `wait` is `delay`, else the gap between arrivals.
- rows without one are chained by prefix: a request joins the session whose latest request's
  full blocks are a prefix of its own `hash_ids`, provided the last matched block belongs to that
  session alone (a prefix that other sessions share too, such as a common system prompt, is not
  evidence of a continuation). Anything else starts a new session. `wait` is the gap between
  the two arrivals (an upper bound: it includes the previous request's own service time).
Session `start` is the first request's time, relative to the earliest timestamp in its file
(every file starts at 0). Ids are scoped to their file. One file's sessions are held in memory
while it is read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from corpus.anonymizer import Anonymizer
from corpus.importers.base import Ids, Imported, Report, count, expand, json_lines, where
from corpus.records import After, Turn

BLOCK_SIZE = 512
DOMAIN = "chat"
NOTES = (
    "mooncake: sessions from session_id, else chained by hash-id prefix; waits are arrival gaps "
    "unless a delay was recorded; no durations"
)


def native_block_size(sources: list[Path]) -> int | None:
    """512, or the `block_size` the first row of the first file declares (agentload's export)."""
    with open(files(sources)[0], "rb") as f:
        for _, obj in json_lines(f, "", Report("mooncake")):
            size = obj.get("block_size")
            if isinstance(size, int) and not isinstance(size, bool) and size > 0:
                return size
            break
    return BLOCK_SIZE


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.jsonl",), "Mooncake JSONL files")


@dataclass
class Row:
    ts: float | None  # seconds
    delay: float | None  # seconds
    input: int
    output: int
    ids: list[int]
    parent: str | None = None
    context: int | None = None  # extensions (see the module docstring)
    prefix: int | None = None
    extra: list[int] = field(default_factory=list)
    continues: str | None = None  # a conversation that restarts this session (whole context)


@dataclass
class Group:
    rows: list[Row] = field(default_factory=list)
    sid: str | None = None


def _int_list(value: object, name: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise ValueError(f"'{name}' should be a list of integers")
    return value


def _parse(path: Path, report: Report, bs: int) -> tuple[list[Row], list[str | None]]:
    rows: list[Row] = []
    sids: list[str | None] = []
    with open(path, "rb") as f:
        for n, obj in json_lines(f, path, report):
            try:
                ids = _aliased(obj, "hash_ids")
                inp = count(obj.get("input_length"), "input_length", required=True)
                assert inp is not None
                if len(ids) > math.ceil(inp / bs):
                    raise ValueError(
                        f"{len(ids)} hash_ids need more than {inp} input tokens "
                        f"at {bs} tokens per block"
                    )
                size = obj.get("block_size")
                if size is not None and size != bs:
                    raise ValueError(
                        f"'block_size' is {size!r} but the file's first row declares {bs}"
                    )
                ts = obj.get("timestamp")
                parent = obj.get("parent_session_id")
                cont = obj.get("continues")
                delay = obj.get("continue_delay") if cont is not None else obj.get("delay")
                row = Row(
                    ts=None if ts is None else _ms(ts, "timestamp"),
                    delay=None if delay is None else _ms(delay, "delay"),
                    input=inp,
                    output=count(obj.get("output_length"), "output_length") or 0,
                    ids=ids,
                    parent=None if parent is None else str(parent),
                    context=count(obj.get("context_length"), "context_length"),
                    prefix=count(obj.get("prefix_blocks"), "prefix_blocks"),
                    extra=_aliased(obj, "extra_hash_ids"),
                    continues=None if cont is None else str(cont),
                )
            except ValueError as exc:
                report.skip(where(path, n), f"{exc}; row left out")
                continue
            rows.append(row)
            sid = obj.get("session_id")
            sids.append(None if sid is None else str(sid))
    return rows, sids


def _aliased(obj: dict[str, object], name: str) -> list[int]:
    """The ids in `obj[name]`, with the export's made-up ids (`hash_id_aliases`: pairs of
    made-up id and corpus id) back to the corpus's."""
    ids = _int_list(obj.get(name), name)
    pairs = obj.get("hash_id_aliases")
    if pairs is None:
        return ids
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(i, int) for i in p) for p in pairs
    ):
        raise ValueError("'hash_id_aliases' should be a list of [made-up id, id] pairs")
    back = {a: h for a, h in pairs}
    return [back.get(i, i) for i in ids]


def _ms(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"'{name}' should be a number of milliseconds, found {value!r}")
    return float(value) / 1000.0


def _by_session_id(rows: list[Row], sids: list[str | None], bs: int) -> list[Group]:
    groups: dict[str, Group] = {}
    out: list[Group] = []
    for row, sid in zip(rows, sids, strict=True):
        if sid is None:
            out.append(Group([row]))
            continue
        sess = groups.get(sid)
        if sess is None:
            whole = groups.get(row.continues) if row.continues is not None else None
            if whole is not None:  # a restart of that session: its rows go on there
                groups[sid] = whole
                whole.rows.append(row)
                continue
            row.continues = None
            sess = groups[sid] = Group(sid=sid)
            out.append(sess)
        sess.rows.append(row)
    for sess in out:
        if len(sess.rows) > 1 and not _whole(sess.rows):
            _undelta(sess.rows, bs)
        elif sess.rows[0].context is not None:
            sess.rows[0].input = sess.rows[0].context
    return out


def _whole(rows: list[Row]) -> bool:
    """Whether a session's rows hold whole requests (not deltas, see the module docstring)."""
    if any(r.context is not None for r in rows):
        return False
    first = rows[0].ids[:1]
    return bool(first) and all(
        r.ids[:1] == first and r.input >= p.input for p, r in zip(rows, rows[1:], strict=False)
    )


def _undelta(rows: list[Row], bs: int) -> None:
    """Turn delta rows into whole requests: inputs accumulate, chains extend the previous.
    Restart rows (`continues`) and a first row hold their whole input already."""
    prev = rows[0]
    if prev.context is not None:
        prev.input = prev.context
    for row in rows[1:]:
        if row.continues is not None:
            row.input = row.context if row.context is not None else row.input
            prev = row
            continue
        total = row.context if row.context is not None else prev.input + prev.output + row.input
        need = math.ceil(total / bs)
        if row.prefix is not None:
            chain = prev.ids[: row.prefix] + row.extra + row.ids
        else:
            chain = prev.ids[: max(0, need - len(row.ids))] + row.ids
        row.input, row.ids = total, chain[:need]
        prev = row


def _chain(rows: list[Row], bs: int) -> list[Group]:
    """Sessions by prefix chaining (see the module docstring)."""
    if all(r.ts is not None for r in rows):
        rows = sorted(rows, key=lambda r: r.ts or 0.0)
    sessions: list[Group] = []
    tails: dict[int, tuple[int, list[int]]] = {}  # last full block -> (session, full blocks)
    owner: dict[int, int] = {}  # block -> first session that used it
    shared: set[int] = set()  # blocks used by more than one session
    for row in rows:
        ids = row.ids
        found: int | None = None
        for k in range(len(ids), 0, -1):
            hit = tails.get(ids[k - 1])
            if hit is None:
                continue
            if ids[k - 1] not in shared and hit[1] == ids[:k]:
                found = hit[0]
                del tails[ids[k - 1]]
            break
        if found is None:
            found = len(sessions)
            sessions.append(Group())
        sessions[found].rows.append(row)
        for b in ids:
            if owner.setdefault(b, found) != found:
                shared.add(b)
        full = min(len(ids), row.input // bs)
        if full:
            tails[ids[full - 1]] = (found, ids[:full])
    return sessions


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    bs = native_block_size(sources) or BLOCK_SIZE
    for path in files(sources):
        rows, sids = _parse(path, report, bs)
        report.bytes_read += path.stat().st_size
        if not rows:
            continue
        if any(s is not None for s in sids):
            groups = _by_session_id(rows, sids, bs)
        else:
            groups = _chain(rows, bs)
        stamps = [r.ts for r in rows if r.ts is not None]
        origin = min(stamps) if stamps else 0.0
        ids = Ids(anon, f"mooncake\x00{path.resolve()}")
        groups.sort(key=lambda g: g.rows[0].ts if g.rows[0].ts is not None else origin)
        for group in groups:
            yield imported(group, origin, ids, path, bs)


def imported(group: Group, origin: float, ids: Ids, path: Path, bs: int) -> Imported:
    rows = group.rows
    first = rows[0]
    t0 = first.ts if first.ts is not None else origin
    out = Imported(start=max(0.0, t0 - origin))
    if group.sid is not None:
        out.key = (path, group.sid)
        out.parent = None if first.parent is None else (path, first.parent)
    t = 0.0
    after: After
    for k, row in enumerate(rows):
        if k == 0:
            wait, after = 0.0, "start"
        else:
            after = "user"
            if row.ts is not None:
                t_new = row.ts - t0
                wait = row.delay if row.delay is not None else max(0.0, t_new - t)
                t = t_new
            else:
                wait = row.delay or 0.0
                t += wait
        blocks = ids(row.ids)
        for _ in range(len(blocks), math.ceil(row.input / bs)):
            blocks.append(ids.anon.unique())  # a source that hashed only a prefix
        turn = Turn(t=max(0.0, t), input=row.input, output=row.output, wait=wait, after=after)
        out.turns.append((turn, blocks))
    return out
