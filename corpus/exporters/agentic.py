"""Export a corpus as Dynamo's Agentic Mooncake v2 JSONL: requests as a dependency graph.

Written from Dynamo's public source (`dynamo-data-gen` `AgenticMooncakeRow`, the mocker's
`agentic_mooncake` trace format, AISimulate's format notes). The first line is the header
`{"schema": "dynamo.agentic_mooncake", "version": 2, "block_size", "hash_id_scope": "local",
"source": {"format": "agentload", "digest": sha256 of the corpus file}}`; then one row per
turn: `request_id` (`sN:K`, session N's turn K), `play_id` (`pN`, the top-level session N and
its sub-agents), `source_play_ordinal` (plays in start order), `session_id` (`sN`), `model`,
`input_length` (the turn's whole input), `output_length`, `hash_ids` (its whole block chain,
the last block partial), `not_before_ms` (ms from its play's start), `recorded_api_time_ms`
(the turn's duration, when observed) and `dependencies`, each
`{"request_id", "trigger": "completion" | "dispatch", "delay_ms", "relation"}`:

- `sequence`: a session's turn waits for the completion of its previous turn, then `wait`.
- `spawn`: a sub-agent's first turn waits for the parent turn that launched it: the last one
  that ended by then (`completion`, delay from its end), else the last one that started
  (`dispatch`, delay from its start).
- `join`: the parent's first turn after a sub-agent's last turn ended waits for that last turn
  too (delay 0), as Dynamo's Weka lowering writes it.

`version=1` writes the legacy rows instead: no header, `request_id`, `session_id`,
`input_length`, `output_length`, `hash_ids`, `timestamp` (ms from the corpus's first session),
`prefix_reset` (a session's first request), `wait_for` (the completions it waits on: its
previous request, the parent request that spawned it, a joined sub-agent's last), `branches`
(the sub-agents a request spawns) and the gap after its latest dependency as `tool_wait_ms`
after a tool (`delay` 0), else as `delay`. v1 has no dispatch edges: a sub-agent that started
while its parent's request ran gets none (it starts at its timestamp).

Rows follow the sessions in start order. `block_size` coarsens the blocks as for `mooncake`.
Durations missing from the corpus count as 0 (a turn
ends when it starts). Tool calls, `after`, ttft and stop reasons have no field and are left out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec

from corpus.errors import CorpusError
from corpus.exporters.base import Report, ms, opens
from corpus.exporters.mooncake import block_factor, coarsen
from corpus.reader import Reader
from corpus.records import Session, Turn

SCHEMA = "dynamo.agentic_mooncake"
VERSION = 2


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _end(sess: Session, k: int) -> float:
    turn = sess.turns[k]
    return sess.start + turn.t + (turn.duration or 0.0)


def _begin(sess: Session, k: int) -> float:
    return sess.start + sess.turns[k].t


def _spawn(parent: Session, child: Session) -> dict[str, Any]:
    """The edge from the parent turn that launched `child` to `child`'s first turn (every
    play keeps one root, as Dynamo's validated graph wants)."""
    start = _begin(child, 0)
    ended = [k for k in range(len(parent.turns)) if _end(parent, k) <= start]
    if ended:
        k = max(ended, key=lambda k: (_end(parent, k), k))
        trigger, since = "completion", _end(parent, k)
    else:
        began = [k for k in range(len(parent.turns)) if _begin(parent, k) <= start]
        k = began[-1] if began else 0  # a child recorded before its parent: anchor it anyway
        trigger, since = "dispatch", min(start, _begin(parent, k))
    return {
        "request_id": f"s{parent.id}:{k}",
        "trigger": trigger,
        "delay_ms": ms(max(0.0, start - since)),
        "relation": "spawn",
    }


def _legacy(
    row: dict[str, Any], turn: Turn, start: float, ends: dict[str, float], branches: list[str]
) -> dict[str, Any]:
    """The v1 row of a v2 `row` (see the module docstring); `start` in ms from the corpus's
    first session, `ends` the end (s) of every request."""
    waits = [d for d in row.get("dependencies", ()) if d["trigger"] == "completion"]
    old: dict[str, Any] = {
        "request_id": row["request_id"],
        "session_id": row["session_id"],
        "input_length": row["input_length"],
        "output_length": row["output_length"],
        "hash_ids": row["hash_ids"],
        "timestamp": start,
    }
    if waits:
        old["wait_for"] = [d["request_id"] for d in waits]
        since = max(ends[d["request_id"]] for d in waits)
        gap = ms(max(0.0, ends[row["request_id"]] - (turn.duration or 0.0) - since))
        if turn.after == "tool" and gap:
            old["delay"], old["tool_wait_ms"] = 0, gap
        else:
            old["delay"] = gap
    if branches:
        old["branches"] = branches
    old["prefix_reset"] = "sequence" not in {d["relation"] for d in waits}
    return old


def write(src: Path, out: Path, *, block_size: int | None = None, version: int = VERSION) -> Report:
    reader = Reader(src)
    bs = reader.header.block_size
    factor = block_factor(src, bs, block_size)
    target = bs * factor
    meta = sorted(opens(reader), key=lambda o: (o.start, o.id))
    sessions = {s.id: s for s in reader.sessions() if s.turns}
    parent = {
        o.id: o.parent
        for o in meta
        if o.id in sessions and o.parent is not None and o.parent in sessions
    }

    def root(sid: int) -> int:
        seen = {sid}
        while sid in parent and parent[sid] not in seen:
            sid = parent[sid]
            seen.add(sid)
        return sid

    plays: dict[int, int] = {}
    for o in meta:
        if o.id in sessions and o.id not in parent:
            plays[o.id] = len(plays)
    deps: dict[str, list[dict[str, Any]]] = {}
    for cid, pid in parent.items():
        child, par = sessions[cid], sessions[pid]
        deps.setdefault(f"s{cid}:0", []).append(_spawn(par, child))
        last = len(child.turns) - 1
        done = _end(child, last)
        joins = [k for k in range(len(par.turns)) if _begin(par, k) >= done]
        if joins:
            deps.setdefault(f"s{pid}:{joins[0]}", []).append(
                {
                    "request_id": f"s{cid}:{last}",
                    "trigger": "completion",
                    "delay_ms": 0,
                    "relation": "join",
                }
            )
    if version not in (1, 2):
        raise CorpusError(f"Agentic Mooncake has versions 1 and 2, not {version}")
    report = Report(format="agentic-mooncake", out=out, files=1)
    enc = msgspec.json.Encoder()
    ends = {f"s{s.id}:{k}": _end(s, k) for s in sessions.values() for k in range(len(s.turns))}
    branches: dict[str, list[str]] = {}
    for rid, edges in deps.items():
        for edge in edges:
            if edge["relation"] == "spawn" and edge["trigger"] == "completion":
                branches.setdefault(edge["request_id"], []).append(rid)
    first = min((s.start for s in sessions.values()), default=0.0)
    header = {
        "schema": SCHEMA,
        "version": VERSION,
        "block_size": target,
        "hash_id_scope": "local",
        "source": {"format": "agentload", "digest": _digest(src)},
    }
    with open(out, "wb") as f:
        if version == 2:
            f.write(enc.encode(header) + b"\n")
        for o in meta:
            sess = sessions.get(o.id)
            if sess is None:
                continue
            top = sessions[root(sess.id)]
            origin = top.start
            for k, (turn, blocks) in enumerate(zip(sess.turns, sess.prefixes(), strict=True)):
                rid = f"s{sess.id}:{k}"
                row: dict[str, Any] = {
                    "request_id": rid,
                    "play_id": f"p{top.id}",
                    "source_play_ordinal": plays[top.id],
                    "session_id": f"s{sess.id}",
                    "model": sess.model,
                    "input_length": turn.input,
                    "output_length": turn.output,
                    "hash_ids": coarsen(blocks, factor),
                    "not_before_ms": ms(max(0.0, sess.start + turn.t - origin)),
                }
                if turn.duration is not None:
                    row["recorded_api_time_ms"] = ms(turn.duration)
                edges = []
                if k > 0:
                    edges.append(
                        {
                            "request_id": f"s{sess.id}:{k - 1}",
                            "trigger": "completion",
                            "delay_ms": ms(turn.wait),
                            "relation": "sequence",
                        }
                    )
                edges.extend(deps.get(rid, ()))
                if edges:
                    row["dependencies"] = edges
                if version == 1:
                    start = ms(sess.start + turn.t - first)
                    row = _legacy(row, turn, start, ends, branches.get(rid, []))
                f.write(enc.encode(row) + b"\n")
            report.sessions += 1
            report.turns += len(sess.turns)
    if version == 1:
        report.warn(f"v1 rows don't say their block size: replay with --trace-block-size {target}")
        dispatched = sum(1 for edges in deps.values() for e in edges if e["trigger"] == "dispatch")
        if dispatched:
            report.warn(
                f"{dispatched} sub-agents started while their parent's request was running: "
                "v1 waits only on completions, so they start at their timestamp, unlinked"
            )
    if reader.damage is not None:
        report.warn(reader.damage.message(str(src)))
    return report
