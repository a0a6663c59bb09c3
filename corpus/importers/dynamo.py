"""Import NVIDIA Dynamo agent traces (`dynamo.agent.trace.v1`): the JSONL (or `.jsonl.gz`) that
Dynamo's agent-trace sinks write, with the harness's tool events.

Written from Dynamo's public agent-tracing documentation (the fixture is hand-made). One record
per line (the file sink may wrap it as `{"timestamp", "event": {...}}`):

- `request_end`: one model call. `request` holds `input_tokens`, `output_tokens`,
  `cached_tokens`, `model`, `request_received_ms`, `ttft_ms`, `total_time_ms`.
- `tool_start` / `tool_end` / `tool_error` (from the harness): `tool` holds `tool_class`,
  `started_at_unix_ms`, `ended_at_unix_ms`.
- `agent_context` on every record names the lane: `trajectory_id` within `session_id` (older
  records: `program_id` within `workflow_id`), a sub-agent's `parent_trajectory_id`
  (`parent_program_id`), and the kind of run in `session_type_id` (`workflow_type_id`).

One session per lane; a lane with a parent lane is its sub-agent. `t` = `request_received_ms`,
`duration` = `total_time_ms`, `ttft` = `ttft_ms`, `wait` = the gap after the previous call's end;
terminal tool records that start between two calls are the first call's `tool_calls` and make
the next one come `after` a tool. The trace holds no content: blocks are made up per lane, each
call keeping as many of the previous call's blocks as its `cached_tokens` cover. Records of
other schemas are listed as skipped.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpus.anonymizer import Anonymizer
from corpus.importers.base import (
    Imported,
    Report,
    cache_blocks,
    count,
    expand,
    json_lines,
    where,
)
from corpus.records import After, Turn

SCHEMA = "dynamo.agent.trace.v1"
DOMAIN = "unknown"
NOTES = (
    "dynamo: request_end records per agent lane; tool records as waits; blocks made up from "
    "cached_tokens within a lane (no content)"
)
_TOOL_ENDS = frozenset({"tool_end", "tool_error"})


def native_block_size(sources: list[Path]) -> int | None:
    return None


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.jsonl", "*.jsonl.gz"), "Dynamo agent traces (*.jsonl, *.jsonl.gz)")


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.splitlines()


def _ms(value: Any, name: str) -> float | None:
    if value is None:
        return None
    return _required_ms(value, name)


def _required_ms(value: Any, name: str) -> float:
    if value is None:
        raise ValueError(f"'{name}' is missing")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"'{name}' should be milliseconds ≥ 0, found {value!r}")
    return float(value) / 1000.0


@dataclass
class _Call:
    start: float
    end: float
    ttft: float | None
    input: int
    output: int
    cached: int
    model: str


@dataclass
class _Lane:
    key: str
    parent: str | None
    agent: str
    calls: list[_Call] = field(default_factory=list)
    tools: list[tuple[float, str]] = field(default_factory=list)  # (start, tool class)


def _lane(ctx: Any, lanes: dict[str, _Lane]) -> _Lane:
    if not isinstance(ctx, Mapping):
        raise ValueError("'agent_context' is missing")
    run = ctx.get("session_id") or ctx.get("workflow_id") or ""
    lane = ctx.get("trajectory_id") or ctx.get("program_id") or run
    if not lane:
        raise ValueError("'agent_context' names no trajectory_id/program_id or session_id")
    parent = ctx.get("parent_trajectory_id") or ctx.get("parent_program_id")
    key = f"{run}\x00{lane}"
    found = lanes.get(key)
    if found is None:
        found = lanes[key] = _Lane(
            key=key,
            parent=None if not parent else f"{run}\x00{parent}",
            agent=str(ctx.get("session_type_id") or ctx.get("workflow_type_id") or ""),
        )
    return found


def _record(rec: Mapping[str, Any], lanes: dict[str, _Lane]) -> None:
    if rec.get("schema") != SCHEMA:
        raise ValueError(f"expected schema {SCHEMA!r}, found {rec.get('schema')!r}")
    kind = rec.get("event_type")
    if kind == "request_end":
        req = rec.get("request")
        if not isinstance(req, Mapping):
            raise ValueError("'request' is missing")
        start = _required_ms(req.get("request_received_ms"), "request.request_received_ms")
        total = _ms(req.get("total_time_ms"), "request.total_time_ms")
        inp = count(req.get("input_tokens"), "request.input_tokens", required=True)
        assert inp is not None
        _lane(rec.get("agent_context"), lanes).calls.append(
            _Call(
                start=start,
                end=start + (total or 0.0),
                ttft=_ms(req.get("ttft_ms"), "request.ttft_ms"),
                input=inp,
                output=count(req.get("output_tokens"), "request.output_tokens") or 0,
                cached=count(req.get("cached_tokens"), "request.cached_tokens") or 0,
                model=str(req.get("model") or ""),
            )
        )
    elif kind in _TOOL_ENDS:
        tool = rec.get("tool")
        if not isinstance(tool, Mapping):
            raise ValueError("'tool' is missing")
        start = _required_ms(tool.get("started_at_unix_ms"), "tool.started_at_unix_ms")
        name = str(tool.get("tool_class") or tool.get("tool_name_hash") or "tool")
        _lane(rec.get("agent_context"), lanes).tools.append((start, name))


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    lanes: dict[str, _Lane] = {}
    for path in files(sources):
        for n, obj in json_lines(_lines(path), path, report):
            wrapped = obj.get("event")
            rec: Mapping[str, Any] = wrapped if isinstance(wrapped, Mapping) else obj
            try:
                _record(rec, lanes)
            except ValueError as exc:
                report.skip(where(path, n), f"{exc}; record left out")
        report.bytes_read += path.stat().st_size
    used = [lane for lane in lanes.values() if lane.calls]
    if not used:
        return
    for lane in used:
        lane.calls.sort(key=lambda c: c.start)
        lane.tools.sort()
    origin = min(lane.calls[0].start for lane in used)
    keys = {lane.key for lane in used}
    for lane in sorted(used, key=lambda lane: (lane.calls[0].start, lane.parent is not None)):
        yield _session(lane, origin, anon, keys)


def _session(lane: _Lane, origin: float, anon: Anonymizer, keys: set[str]) -> Imported:
    first = lane.calls[0]
    out = Imported(
        start=first.start - origin,
        model=first.model,
        api="",
        agent=lane.agent,
        key=lane.key,
        parent=lane.parent if lane.parent in keys else None,
    )
    prev: _Call | None = None
    blocks: list[int] = []
    for k, c in enumerate(lane.calls):
        nxt = lane.calls[k + 1].start if k + 1 < len(lane.calls) else float("inf")
        ran = [name for start, name in lane.tools if c.end <= start < nxt]
        after: After
        if prev is None:
            after, wait = "start", 0.0
        else:
            before = [1 for start, _ in lane.tools if prev.end <= start < c.start]
            after, wait = ("tool" if before else "user"), max(0.0, c.start - prev.end)
        blocks = cache_blocks(anon, blocks, c.cached, c.input)
        turn = Turn(
            t=c.start - first.start,
            input=c.input,
            output=c.output,
            wait=wait,
            after=after,
            tool_calls=tuple(anon.tool(n) for n in ran),
            ttft=c.ttft,
            duration=c.end - c.start,
            usage_input=c.input,
            usage_cached=c.cached,
        )
        out.turns.append((turn, blocks))
        prev = c
    return out
