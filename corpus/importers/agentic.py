"""Import Dynamo's Agentic Mooncake JSONL: model requests as a dependency graph, no text.

Written from Dynamo's public source (`dynamo-data-gen` `AgenticMooncakeRow`, its
`agent_trace_to_mooncake --agentic` converter and the mocker's `agentic_mooncake` loader); the
fixtures are hand-made. Two generations:

- v2 (current): a header line `{"schema": "dynamo.agentic_mooncake", "version": 2,
  "block_size", "hash_id_scope", "source"}`, then rows with `request_id`, `play_id`,
  `session_id`, `model`, `input_length`, `output_length`, `hash_ids`, `not_before_ms` (ms from
  the play's start), optional `recorded_api_time_ms` and `dependencies`
  (`{"request_id", "trigger": "dispatch" | "completion", "delay_ms", "relation": "sequence" |
  "spawn" | "join" | "replay_barrier"}`).
- v1 (legacy, no header): rows with `request_id`, optional `session_id` (the trajectory),
  `input_length`, `output_length`, `hash_ids`, `timestamp` (ms from the trace's start),
  `wait_for` (request ids it waits on), `branches`, `prefix_reset`, `delay` and `tool_wait_ms`
  (the wait after its dependencies: `delay` + `tool_wait_ms`). v1 rows don't say their block
  size: pass the one the converter printed with `--block-size` (default 64).

Every row holds its request's whole input (`hash_ids` its whole block chain, the last block
partial). One session per `session_id` (rows in time order); a session whose first request
depends on a request of another session (v2: a `spawn` edge; v1: `wait_for`) is that
session's sub-agent. `t` comes from `not_before_ms` / `timestamp`; `wait` is the delay of the
edge from the session's previous request (v1: `delay` + `tool_wait_ms`), else the gap between
the two starts; `after` is `tool` when v1 recorded a tool wait, else `user`; `duration` is
`recorded_api_time_ms`. v2 plays carry no absolute start, so every play starts at 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpus.anonymizer import Anonymizer
from corpus.errors import SourceError
from corpus.importers.base import Ids, Imported, Report, count, expand, json_lines, where
from corpus.records import After, Turn

SCHEMA = "dynamo.agentic_mooncake"
DOMAIN = "unknown"
NOTES = (
    "agentic-mooncake: sessions from session_id, sub-agents from spawn edges (v1: wait_for); "
    "waits from edge delays"
)


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.jsonl",), "Agentic Mooncake JSONL files")


def _header(path: Path) -> dict[str, Any] | None:
    """The v2 header of `path`, None for a v1 file (its first row is a request)."""
    with open(path, "rb") as f:
        for _, obj in json_lines(f, path, Report("agentic-mooncake")):
            if "schema" not in obj:
                return None
            if obj["schema"] != SCHEMA:
                raise SourceError(
                    f"{where(path, 1)}: schema {obj['schema']!r} is not {SCHEMA!r}; "
                    "is this the right format?"
                )
            if obj.get("version") != 2:
                raise SourceError(
                    f"{where(path, 1)}: Agentic Mooncake version {obj.get('version')!r} is not "
                    "supported (2, or v1 rows without a header)"
                )
            size = obj.get("block_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise SourceError(f"{where(path, 1)}: header 'block_size' should be ≥ 1")
            return obj
    return None


def native_block_size(sources: list[Path]) -> int | None:
    """The v2 header's `block_size` (every file must agree); None for v1 files."""
    sizes = set()
    for path in files(sources):
        head = _header(path)
        sizes.add(None if head is None else head["block_size"])
    if len(sizes) > 1:
        raise SourceError(f"Agentic Mooncake files disagree on their block size: {sizes}")
    return sizes.pop()


@dataclass
class _Row:
    rid: str
    sid: str
    play: str
    model: str
    input: int
    output: int
    ids: list[int]
    time: float | None  # seconds (v2: from the play's start)
    duration: float | None
    deps: list[tuple[str, str, float, str]] = field(default_factory=list)  # id, trigger, s, rel
    tool_wait: float = 0.0
    line: int = 0


def _seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"'{name}' should be a number of milliseconds, found {value!r}")
    if value < 0:
        raise ValueError(f"'{name}' should be ≥ 0, found {value!r}")
    return float(value) / 1000.0


def _text(obj: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise ValueError(f"'{name}' is missing")
        return None
    if not isinstance(value, str) or (required and not value):
        raise ValueError(f"'{name}' should be a non-empty string, found {value!r}")
    return value


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise ValueError("'hash_ids' should be a list of integers")
    return value


def _row_v2(obj: dict[str, Any]) -> _Row:
    deps: list[tuple[str, str, float, str]] = []
    raw = obj.get("dependencies") or []
    if not isinstance(raw, list):
        raise ValueError("'dependencies' should be a list")
    for dep in raw:
        if not isinstance(dep, dict):
            raise ValueError("each dependency should be an object")
        trigger, relation = dep.get("trigger"), dep.get("relation")
        if trigger not in ("dispatch", "completion"):
            raise ValueError(f"dependency trigger {trigger!r} is not dispatch or completion")
        if relation not in ("sequence", "spawn", "join", "replay_barrier"):
            raise ValueError(f"dependency relation {relation!r} is not known")
        delay = _seconds(dep.get("delay_ms", 0), "delay_ms") or 0.0
        deps.append((str(_text(dep, "request_id", required=True)), trigger, delay, relation))
    time = _seconds(obj.get("not_before_ms"), "not_before_ms")
    if time is None:
        raise ValueError("'not_before_ms' is missing")
    return _Row(
        rid=str(_text(obj, "request_id", required=True)),
        sid=str(_text(obj, "session_id", required=True)),
        play=str(_text(obj, "play_id", required=True)),
        model=_text(obj, "model", required=False) or "",
        input=_length(obj, "input_length", "input_tokens", required=True),
        output=_length(obj, "output_length", "output_tokens", required=False),
        ids=_ids(obj.get("hash_ids")),
        time=time,
        duration=_seconds(obj.get("recorded_api_time_ms"), "recorded_api_time_ms"),
        deps=deps,
    )


def _row_v1(obj: dict[str, Any]) -> _Row:
    rid = str(_text(obj, "request_id", required=True))
    waits = obj.get("wait_for") or []
    if not isinstance(waits, list) or not all(isinstance(w, str) for w in waits):
        raise ValueError("'wait_for' should be a list of request ids")
    delay = _seconds(obj.get("delay", obj.get("delay_ms")), "delay") or 0.0
    tool = _seconds(obj.get("tool_wait_ms"), "tool_wait_ms") or 0.0
    stamp = obj.get("timestamp", obj.get("created_time"))
    return _Row(
        rid=rid,
        sid=_text(obj, "session_id", required=False) or rid,
        play="",
        model="",
        input=_length(obj, "input_length", "input_tokens", required=True),
        output=_length(obj, "output_length", "output_tokens", required=False),
        ids=_ids(obj.get("hash_ids")),
        time=_seconds(stamp, "timestamp"),
        duration=None,
        deps=[(w, "completion", delay, "") for w in waits],
        tool_wait=tool,
    )


def _length(obj: dict[str, Any], name: str, alias: str, *, required: bool) -> int:
    value = obj.get(name, obj.get(alias))
    return count(value, name, required=required) or 0


def _parse(path: Path, report: Report, bs: int) -> list[_Row]:
    v2 = _header(path) is not None
    rows: list[_Row] = []
    seen: set[str] = set()
    with open(path, "rb") as f:
        for n, obj in json_lines(f, path, report):
            if v2 and n == 1:
                continue
            try:
                row = _row_v2(obj) if v2 else _row_v1(obj)
                if len(row.ids) > math.ceil(row.input / bs):
                    raise ValueError(
                        f"{len(row.ids)} hash_ids need more than {row.input} input tokens at "
                        f"{bs} tokens per block"
                    )
                if row.rid in seen:
                    raise ValueError(f"request_id {row.rid!r} is used twice")
            except ValueError as exc:
                report.skip(where(path, n), f"{exc}; row left out")
                continue
            seen.add(row.rid)
            row.line = n
            rows.append(row)
    return rows


def _times(rows: list[_Row], by_id: dict[str, _Row]) -> None:
    """Fill in missing v1 timestamps from the dependencies (no durations: ends = starts)."""
    for row in rows:
        if row.time is None:
            ready = [(by_id[d].time or 0.0) + delay for d, _, delay, _ in row.deps if d in by_id]
            row.time = max(ready, default=0.0) + row.tool_wait


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    bs = anon.block_size
    for path in files(sources):
        rows = _parse(path, report, bs)
        report.bytes_read += path.stat().st_size
        if not rows:
            continue
        by_id = {r.rid: r for r in rows}
        _times(rows, by_id)
        groups: dict[str, list[_Row]] = {}
        for row in rows:
            groups.setdefault(row.sid, []).append(row)
        for group in groups.values():
            group.sort(key=lambda r: (r.time or 0.0, r.line))
        parents: dict[str, str] = {}
        for sid, group in groups.items():
            for dep, _, _, relation in group[0].deps:
                other = by_id.get(dep)
                if other is not None and other.sid != sid and relation in ("spawn", ""):
                    parents[sid] = other.sid
                    break

        ids = Ids(anon, f"agentic-mooncake\x00{path.resolve()}")
        order = sorted(groups, key=lambda s: (groups[s][0].time or 0.0, _depth(s, parents)))
        for sid in order:
            yield _imported(sid, groups[sid], parents.get(sid), path, ids, bs)


def _depth(sid: str, parents: dict[str, str]) -> int:
    """How many parents `sid` has (parents are yielded before their sub-agents)."""
    d, seen = 0, {sid}
    while sid in parents and parents[sid] not in seen:
        sid = parents[sid]
        seen.add(sid)
        d += 1
    return d


def _imported(
    sid: str, rows: list[_Row], parent: str | None, path: Path, ids: Ids, bs: int
) -> Imported:
    first = rows[0]
    t0 = first.time or 0.0
    out = Imported(start=t0, model=first.model, key=(path, sid))
    out.parent = None if parent is None else (path, parent)
    prev: _Row | None = None
    for row in rows:
        t = (row.time or 0.0) - t0
        after: After = "start"
        wait = 0.0
        if prev is not None:
            after = "tool" if row.tool_wait > 0 else "user"
            edge = next((d for d in row.deps if d[0] == prev.rid), None)
            if edge is not None and edge[1] == "completion":
                wait = edge[2] + row.tool_wait
            else:
                wait = max(0.0, t - ((prev.time or 0.0) - t0) - (prev.duration or 0.0))
        blocks = ids(row.ids)
        for _ in range(len(blocks), math.ceil(row.input / bs)):
            blocks.append(ids.anon.unique())
        turn = Turn(
            t=max(0.0, t),
            input=row.input,
            output=row.output,
            wait=wait,
            after=after,
            duration=row.duration,
        )
        out.turns.append((turn, blocks))
        prev = row
    return out
