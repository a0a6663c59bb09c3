"""Import WEKA / kv-cache-tester trace JSON (`traces/trace_NNNN.json`, files or folders).

One trace is one Claude Code conversation: `requests` holds API calls (`type` "n", or "s" for
streaming with `ttft`) and `type: "subagent"` entries that nest their own `requests`. Per call:
`t` (s from the start of its conversation), `in`, `out`, `hash_ids` (64-token chained blocks,
full blocks only), `api_time`, `think_time`, `stop`, `model`. `hash_id_scope: local`: ids are
scoped to one trace file, sub-agents share their parent's namespace.

Mapping:
- blocks: the trace's ids (scoped to the file) plus, when `in` is not a multiple of the block
  size, one unique id for the partial tail the source doesn't hash.
- `wait` = `think_time` (else the idle gap `t - (t_prev + api_time_prev)`), `after` = `tool`
  when the previous call stopped with `tool_use`, else `user`; `duration` = `api_time`.
- every sub-agent is its own session with `parent` set. Its `start` is the parent's plus the
  entry's `t - duration_ms/1000`: in these captures an entry's `t` is when the sub-agent
  finished (its Task result returned), while its own requests' `t` count from its launch. An
  `async_launched` entry without `duration_ms` was recorded at launch, so its `t` is the start.
- traces carry no absolute time: every top-level session starts at 0.
- agent `claude-code`, api `anthropic-messages`, model from the session's first call.
A request that contradicts itself (more hash blocks than input tokens, missing counts) is
skipped and reported; a file that is not a trace at all raises `SourceError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from corpus.anonymizer import Anonymizer
from corpus.errors import SourceError
from corpus.importers.base import Ids, Imported, Report, count, expand, seconds, where
from corpus.records import After, Turn
from corpus.wire import apis

DEFAULT_BLOCK_SIZE = 64
DOMAIN = "coding"
AGENT = "claude-code"
NOTES = (
    "weka: one session per trace and per sub-agent (parent set); top-level sessions all start "
    "at 0; wait = think_time, duration = api_time"
)


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.json",), "kv-cache-tester trace files (*.json)")


def _load(path: Path) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise SourceError(
            f"{path}: expected a kv-cache-tester trace (JSON), found invalid JSON ({exc}); "
            "remove it or fix it"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
        found = type(data).__name__ if not isinstance(data, dict) else "an object without it"
        raise SourceError(
            f"{path}: expected a kv-cache-tester trace (an object with a 'requests' list), "
            f"found {found}; is this the right format?"
        )
    return data


def native_block_size(sources: list[Path]) -> int | None:
    """The block size the traces declare (all must agree; checked again while importing)."""
    path = files(sources)[0]
    return _block_size(_load(path), path)


def _block_size(data: dict[str, Any], path: Path) -> int:
    bs = data.get("block_size", DEFAULT_BLOCK_SIZE)
    if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
        raise SourceError(f"{path}: 'block_size' should be a positive integer, found {bs!r}")
    return bs


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    for path in files(sources):
        data = _load(path)
        report.bytes_read += path.stat().st_size
        bs = _block_size(data, path)
        if bs != anon.block_size:
            raise SourceError(
                f"{path}: trace uses {bs}-token blocks, this import writes {anon.block_size}; "
                "import traces of one block size together"
            )
        scope = data.get("hash_id_scope", "local")
        if scope != "local":
            report.warn(
                f"hash_id_scope {scope!r} read as 'local': ids are kept per trace file, so equal "
                "ids in two traces are not taken as shared blocks"
            )
        ids = Ids(anon, f"weka\x00{path.resolve()}")
        yield from _tree(data["requests"], path, "requests", 0.0, None, ids, report)


def _tree(
    requests: list[Any],
    path: Path,
    label: str,
    start: float,
    parent: object,
    ids: Ids,
    report: Report,
) -> Iterator[Imported]:
    """The session made of `requests` (yielded first), then its sub-agents, depth first."""
    me = Imported(start=start, api=apis.ANTHROPIC, agent=AGENT, key=object(), parent=parent)
    children: list[tuple[float, list[Any], str]] = []
    prev: Turn | None = None
    bs = ids.anon.block_size
    for i, req in enumerate(requests):
        at = f"{label}[{i}]"
        if not isinstance(req, dict):
            report.skip(where(path, at), f"expected a request object, found {type(req).__name__}")
            continue
        if req.get("type") == "subagent":
            sub = req.get("requests")
            if not isinstance(sub, list):
                report.skip(where(path, at), "sub-agent entry without a 'requests' list")
                continue
            try:
                end = seconds(req.get("t"), "t") or 0.0
                dur_ms = seconds(req.get("duration_ms"), "duration_ms")
            except ValueError as exc:
                report.skip(where(path, at), f"{exc}; sub-agent left out")
                continue
            offset = end - dur_ms / 1000.0 if dur_ms is not None else end
            children.append((start + max(0.0, offset), sub, f"{at}.requests"))
            continue
        try:
            turn, blocks = _turn(req, prev, bs, ids)
        except ValueError as exc:
            report.skip(where(path, at), f"{exc}; request left out")
            continue
        if not me.turns:
            me.model = str(req.get("model") or "")
        me.turns.append((turn, blocks))
        prev = turn
    yield me
    for child_start, sub, sub_label in children:
        yield from _tree(sub, path, sub_label, child_start, me.key, ids, report)


def _turn(req: dict[str, Any], prev: Turn | None, bs: int, ids: Ids) -> tuple[Turn, list[int]]:
    inp = count(req.get("in"), "in", required=True)
    out = count(req.get("out"), "out", required=True)
    assert inp is not None
    assert out is not None
    hashes = req.get("hash_ids") or []
    if not isinstance(hashes, list):
        raise ValueError(f"'hash_ids' should be a list, found {type(hashes).__name__}")
    if not all(isinstance(h, int) and not isinstance(h, bool) for h in hashes):
        raise ValueError("'hash_ids' should be a list of integers")
    if len(hashes) * bs > inp:
        raise ValueError(f"{len(hashes)} hash_ids of {bs} tokens exceed 'in' = {inp} tokens")
    t = seconds(req.get("t"), "t") or 0.0
    duration = seconds(req.get("api_time"), "api_time")
    think = seconds(req.get("think_time"), "think_time")
    ttft = seconds(req.get("ttft"), "ttft")
    after: After
    if prev is None:
        wait, after = 0.0, "start"
    else:
        after = "tool" if prev.stop == "tool_use" else "user"
        wait = think if think is not None else max(0.0, t - prev.t - (prev.duration or 0.0))
    blocks = ids(hashes)
    for _ in range(len(hashes), -(-inp // bs)):  # the partial tail the source doesn't hash
        blocks.append(ids.anon.unique())
    stop = req.get("stop")
    turn = Turn(
        t=t,
        input=inp,
        output=out,
        wait=wait,
        after=after,
        ttft=ttft,
        duration=duration,
        stop=str(stop) if stop else None,
    )
    return turn, blocks
