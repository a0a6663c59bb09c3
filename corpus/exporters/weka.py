"""Export a corpus as WEKA / kv-cache-tester trace JSON: a folder, one file per session tree.

Each top-level session becomes `trace_NNNN.json` (NNNN = its session id) with `block_size` = the
corpus's, `hash_id_scope: "local"` and one request per turn: `t`, `type` ("s" with `ttft` when
one was observed, else "n"), `model`, `in`, `out`, `hash_ids` (the full blocks only, as the
format wants), `input_types` ("tool_result" after a tool, else "text"), `output_types`, `stop`,
`api_time` (= duration), `think_time` (= wait). Sub-agents nest as `type: "subagent"` entries
in their parent's `requests`, written as kv-cache-tester records them: `t` is when the
sub-agent finished (its start offset plus `duration_ms`, the span of its turns), so the
importer recovers its start exactly. The traces carry no absolute time, so top-level starts
are lost; tool and system token counts are unknown and written as 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from corpus.errors import CorpusError
from corpus.exporters.base import Report, opens
from corpus.reader import Reader
from corpus.records import Session, Turn

_STOPS = {"tool_calls": "tool_use", "stop": "end_turn"}


def _stop(turn: Turn) -> str:
    if turn.stop is None:
        return "tool_use" if turn.tool_calls else ""
    return _STOPS.get(turn.stop, turn.stop)


def _request(sess: Session, turn: Turn, blocks: list[int], bs: int) -> dict[str, Any]:
    req: dict[str, Any] = {
        "t": turn.t,
        "type": "s" if turn.ttft is not None else "n",
        "model": sess.model,
        "in": turn.input,
        "out": turn.output,
        "hash_ids": blocks[: turn.input // bs],
        "input_types": ["tool_result"] if turn.after == "tool" else ["text"],
        "output_types": ["text", "tool_use"] if _stop(turn) == "tool_use" else ["text"],
        "stop": _stop(turn),
        "api_time": turn.duration,
        "think_time": turn.wait,
    }
    if turn.ttft is not None:
        req["ttft"] = turn.ttft
    return req


def _span(sess: Session) -> float:
    """Seconds from a session's start to the end of its last turn."""
    if not sess.turns:
        return 0.0
    last = sess.turns[-1]
    return last.t + (last.duration or 0.0)


def _requests(
    sess: Session, sessions: dict[int, Session], children: dict[int, list[int]], bs: int
) -> list[dict[str, Any]]:
    items: list[tuple[float, int, dict[str, Any]]] = [
        (turn.t, 0, _request(sess, turn, blocks, bs))
        for turn, blocks in zip(sess.turns, sess.prefixes(), strict=True)
    ]
    for k, cid in enumerate(children.get(sess.id, ()), 1):
        child = sessions[cid]
        duration_ms = round(_span(child) * 1000)
        end = max(0.0, child.start - sess.start) + duration_ms / 1000
        entry = {
            "t": end,
            "type": "subagent",
            "agent_id": f"agent_{k:03d}",
            "subagent_type": "unknown",
            "duration_ms": duration_ms,
            "total_tokens": None,
            "tool_use_count": None,
            "status": "completed",
            "requests": _requests(child, sessions, children, bs),
            "models": [child.model] if child.model else [],
            "tool_tokens": 0,
            "system_tokens": 0,
        }
        items.append((end, 1, entry))
    items.sort(key=lambda x: (x[0], x[1]))
    return [x[2] for x in items]


def _models(sid: int, sessions: dict[int, Session], children: dict[int, list[int]]) -> list[str]:
    seen: list[str] = []
    stack = [sid]
    while stack:
        s = sessions[stack.pop()]
        if s.model and s.model not in seen:
            seen.append(s.model)
        stack.extend(reversed(children.get(s.id, [])))
    return seen


def write(src: Path, out: Path) -> Report:
    reader = Reader(src)
    bs = reader.header.block_size
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CorpusError(f"{out}: exists and is not an empty folder; choose a new output folder")
    out.mkdir(parents=True, exist_ok=True)
    report = Report(format="weka", out=out)
    meta = opens(reader)
    known = {o.id for o in meta}
    parent = {o.id: o.parent for o in meta if o.parent is not None and o.parent in known}
    children: dict[int, list[int]] = {}
    for o in meta:
        if o.id in parent:
            children.setdefault(parent[o.id], []).append(o.id)

    def root(sid: int) -> int:
        seen = set()
        while sid in parent and sid not in seen:
            seen.add(sid)
            sid = parent[sid]
        return sid

    members: dict[int, int] = {}  # root -> sessions of its tree not yet read
    for o in meta:
        r = root(o.id)
        members[r] = members.get(r, 0) + 1
    sessions: dict[int, Session] = {}
    pending: dict[int, int] = dict(members)
    enc = msgspec.json.Encoder()
    for sess in reader.sessions():
        sessions[sess.id] = sess
        r = root(sess.id)
        pending[r] -= 1
        if pending[r]:
            continue
        top = sessions[r]
        trace = {
            "id": f"trace_{r:04d}",
            "models": _models(r, sessions, children),
            "block_size": bs,
            "hash_id_scope": "local",
            "tool_tokens": 0,
            "system_tokens": 0,
            "requests": _requests(top, sessions, children, bs),
        }
        (out / f"trace_{r:04d}.json").write_bytes(enc.encode(trace))
        report.files += 1
        tree = [r]
        while tree:  # release the tree's sessions
            s = tree.pop()
            report.sessions += 1
            report.turns += len(sessions[s].turns)
            tree.extend(children.get(s, []))
            del sessions[s]
    if sessions:
        report.warn(f"{len(sessions)} sessions of incomplete session trees were not written")
    if reader.damage is not None:
        report.warn(reader.damage.message(str(src)))
    return report
