"""Import TraceLab agentic-coding traces (uw-syfi): JSONL (or `.jsonl.gz`), one row per LLM round.

Written from the corpus's public description and AIPerf 0.13's `tracelab` loader, which reads
the same rows (the fixture is hand-made). A row holds `session_id`, `round_index`, `model`,
`provider`, `user`, `project`, `input_tokens_total` = `prefix_tokens` (already resident in the
serving engine's cache) + `newly_append_tokens`, `output_tokens`, `reasoning_output_tokens`,
`first_input_event_type`, `timing_events` (`event_type` + ISO `timestamp`: inputs `user_message`,
`tool_result`; outputs `text`, `reasoning`, `tool_call`) and `tools` (`tool_name`, `emitted_at`,
`result_at`).

Rounds form one session per `session_id`, ordered by when they were sent (the latest input
event; the first output event if none), ties by `round_index`; a round without any time stamp
is listed as skipped. `t` from that, `duration` = last output event − sent, `wait` = sent −
the previous round's end; `after` is `tool` when the round was fed by a tool result. `output` =
`output_tokens` + `reasoning_output_tokens` (what the server generated), `reasoning` the latter,
`usage_cached` = `prefix_tokens`. No content and no hashes: blocks are made up per session,
each round keeping as many of the previous round's blocks as its `prefix_tokens` cover.

Sub-agents have no link in the corpus. As AIPerf does, a session whose whole span lies inside a
blocking `Agent`/`Task` tool call of at least 10 s of another session with the same `user` and
`project` is taken to be that call's sub-agent (the tightest such window wins); Codex's
asynchronous spawns can't be attributed and are left as top-level sessions.
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
    iso_seconds,
    json_lines,
    where,
)
from corpus.records import After, Turn

DOMAIN = "coding"
NOTES = (
    "tracelab: rounds by session_id; blocks made up from the engine-reported prefix_tokens; "
    "sub-agents joined by timing containment in Agent/Task calls"
)
INPUTS = frozenset({"user_message", "tool_result"})
OUTPUTS = frozenset({"text", "reasoning", "tool_call"})
SPAWNS = frozenset({"Agent", "Task"})
MIN_SPAWN = 10.0  # seconds: shorter Agent/Task calls are not taken as sub-agent windows
_AGENTS = {"claude": "claude-code", "claude-code": "claude-code", "codex": "codex"}


def native_block_size(sources: list[Path]) -> int | None:
    return None


def files(sources: list[Path]) -> list[Path]:
    return expand(
        sources, ("*.jsonl", "*.jsonl.gz", "*.json.gz"), "TraceLab JSONL (*.jsonl, *.jsonl.gz)"
    )


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).splitlines()


@dataclass
class _Round:
    sent: float
    end: float
    index: int
    row: Mapping[str, Any]


@dataclass
class _Session:
    sid: str
    rounds: list[_Round] = field(default_factory=list)
    parent: str | None = None

    @property
    def span(self) -> tuple[float, float]:
        return self.rounds[0].sent, max(r.end for r in self.rounds)


def _round(row: Mapping[str, Any]) -> _Round | None:
    ins: list[float] = []
    outs: list[float] = []
    for e in row.get("timing_events") or ():
        if isinstance(e, Mapping):
            ts = iso_seconds(e.get("timestamp"))
            if ts is not None:
                (ins if e.get("event_type") in INPUTS else outs).append(ts)
    if not ins and not outs:
        return None
    sent = max(ins) if ins else min(outs)
    index = row.get("round_index")
    return _Round(
        sent=sent,
        end=max([sent, *outs]),
        index=index if isinstance(index, int) else 0,
        row=row,
    )


def _join(sessions: dict[str, _Session]) -> None:
    """Set `parent` by timing containment in blocking Agent/Task calls (module docstring)."""
    windows: list[tuple[float, float, str, tuple[Any, Any]]] = []
    for sid, s in sessions.items():
        ident = (s.rounds[0].row.get("user"), s.rounds[0].row.get("project"))
        for r in s.rounds:
            for tool in r.row.get("tools") or ():
                if not isinstance(tool, Mapping) or tool.get("tool_name") not in SPAWNS:
                    continue
                start, end = iso_seconds(tool.get("emitted_at")), iso_seconds(tool.get("result_at"))
                if start is not None and end is not None and end - start >= MIN_SPAWN:
                    windows.append((start, end, sid, ident))
    for sid, s in sessions.items():
        lo, hi = s.span
        ident = (s.rounds[0].row.get("user"), s.rounds[0].row.get("project"))
        fits = [w for w in windows if w[2] != sid and w[3] == ident and w[0] <= lo and hi <= w[1]]
        if fits:
            s.parent = min(fits, key=lambda w: w[1] - w[0])[2]


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    found: dict[str, _Session] = {}
    for path in files(sources):
        for n, row in json_lines(_lines(path), path, report):
            sid = row.get("session_id")
            if not isinstance(sid, str | int) or row.get("input_tokens_total") is None:
                report.skip(
                    where(path, n),
                    "expected a TraceLab round ('session_id', 'input_tokens_total'); row left out",
                )
                continue
            r = _round(row)
            if r is None:
                report.skip(where(path, n), "round has no timing_events time stamp; left out")
                continue
            found.setdefault(str(sid), _Session(str(sid))).rounds.append(r)
        report.bytes_read += path.stat().st_size
    if not found:
        return
    for s in found.values():
        s.rounds.sort(key=lambda r: (r.sent, r.index))
    _join(found)
    origin = min(s.span[0] for s in found.values())
    for s in sorted(found.values(), key=lambda s: s.span[0]):
        try:
            yield _session(s, origin, anon)
        except ValueError as exc:
            report.skip(f"session {s.sid}", f"{exc}; session left out")


def _session(s: _Session, origin: float, anon: Anonymizer) -> Imported:
    first = s.rounds[0]
    row0 = first.row
    out = Imported(
        start=first.sent - origin,
        model=str(row0.get("model") or ""),
        agent=_AGENTS.get(str(row0.get("provider") or ""), str(row0.get("provider") or "")),
        key=s.sid,
        parent=s.parent,
    )
    blocks: list[int] = []
    prev: _Round | None = None
    for r in s.rounds:
        row = r.row
        total = count(row.get("input_tokens_total"), "input_tokens_total", required=True) or 0
        prefix = min(count(row.get("prefix_tokens"), "prefix_tokens") or 0, total)
        reasoning = count(row.get("reasoning_output_tokens"), "reasoning_output_tokens")
        output = (count(row.get("output_tokens"), "output_tokens") or 0) + (reasoning or 0)
        after: After = "start"
        if prev is not None:
            after = "tool" if row.get("first_input_event_type") == "tool_result" else "user"
        blocks = cache_blocks(anon, blocks, prefix, total)
        tools = [t.get("tool_name") for t in row.get("tools") or () if isinstance(t, Mapping)]
        called = any(
            isinstance(e, Mapping) and e.get("event_type") == "tool_call"
            for e in row.get("timing_events") or ()
        )
        turn = Turn(
            t=r.sent - first.sent,
            input=total,
            output=output,
            reasoning=reasoning,
            wait=0.0 if prev is None else max(0.0, r.sent - prev.end),
            after=after,
            tool_calls=tuple(anon.tool(str(n or "")) for n in tools),
            duration=r.end - r.sent,
            usage_input=total,
            usage_cached=prefix,
            stop="tool_use" if called else "end_turn",
        )
        out.turns.append((turn, blocks))
        prev = r
    return out
