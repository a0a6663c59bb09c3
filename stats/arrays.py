"""Per-turn and per-session arrays of a `corpus.Table`, all vectorized numpy.

Definitions (the README's "describe" section repeats them):
- reused tokens of a turn = min(input, reuse × block_size): its inherited prefix blocks;
  new tokens = input − reused; reuse ratio = reused / input (NaN when input is 0).
- request time = session start + t, made non-decreasing within a session (a turn is never
  ordered before the one it extends); request order sorts by (time, session id, turn number).
- output speed = output / (duration − ttft), only where both were captured, duration > ttft
  and output > 0.
- session duration = max over its turns of t + duration (duration counts 0 where missing);
  final context = input + output of its last turn; sub-agents = sessions naming it as parent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from corpus import AFTER, Table


@dataclass(frozen=True)
class Layout:
    """How the turns of a table hang together (arrays indexed by turn, in file order, unless
    named per session).

    `session` indexes the per-session arrays (`session_id`, `start`, `parent`); `prev` is the
    previous turn of the same session or -1; `turn_no` counts from 0; `time` is the request
    time; `order` lists turns in request order and `rank` is its inverse.
    """

    session: np.ndarray
    prev: np.ndarray
    turn_no: np.ndarray
    time: np.ndarray
    order: np.ndarray
    rank: np.ndarray
    session_id: np.ndarray
    start: np.ndarray
    parent: np.ndarray  # per session: index of the parent session, -1 = none


def _segmented_cummax(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Running maximum of `values` restarting at each change of the sorted `group`."""
    if not values.size:
        return values.copy()
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    gid = np.cumsum(np.r_[True, group[1:] != group[:-1]]) - 1
    lo = np.minimum.reduceat(values, starts)
    hi = np.maximum.reduceat(values, starts)
    # Shift each group into its own disjoint band so one global accumulate stays per group.
    span = hi - lo
    base = np.cumsum(np.r_[0.0, span[:-1] + 1.0])
    shifted = values - lo[gid] + base[gid]
    return np.maximum.accumulate(shifted) - base[gid] + lo[gid]


def layout(table: Table) -> Layout:
    """The session structure and request order of `table`'s turns."""
    sid = table.turns["session"].astype(np.int64)
    known = table.sessions["id"].astype(np.int64)
    ids = np.union1d(known, sid)
    start = np.zeros(ids.size, dtype=np.float64)
    parent_id = np.full(ids.size, -1, dtype=np.int64)
    pos = np.searchsorted(ids, known)
    start[pos] = table.sessions["start"]
    parent_id[pos] = table.sessions["parent"]
    parent = np.full(ids.size, -1, dtype=np.int64)
    has = parent_id >= 0
    ppos = np.searchsorted(ids, parent_id[has])
    ppos_ok = (ppos < ids.size) & (ids[np.minimum(ppos, ids.size - 1)] == parent_id[has])
    parent[np.flatnonzero(has)[ppos_ok]] = ppos[ppos_ok]

    session = np.searchsorted(ids, sid)
    n = sid.size
    grouped = np.argsort(session, kind="stable")
    gs = session[grouped]
    same = np.r_[False, gs[1:] == gs[:-1]] if n else np.zeros(0, dtype=bool)
    prev = np.full(n, -1, dtype=np.int64)
    prev[grouped[same]] = grouped[np.flatnonzero(same) - 1]
    first = np.flatnonzero(~same)
    run = np.diff(np.r_[first, n])
    turn_no = np.empty(n, dtype=np.int64)
    turn_no[grouped] = np.arange(n) - np.repeat(first, run)

    t = table.turns["t"].astype(np.float64)
    t = np.where(np.isfinite(t), t, 0.0)
    mono = np.empty(n, dtype=np.float64)
    mono[grouped] = _segmented_cummax(t[grouped], gs)
    time = start[session] + mono
    order = np.lexsort((turn_no, session, time))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return Layout(
        session=session,
        prev=prev,
        turn_no=turn_no,
        time=time,
        order=order,
        rank=rank,
        session_id=ids,
        start=start,
        parent=parent,
    )


@dataclass(frozen=True)
class TurnMetrics:
    """Per-turn arrays (file order). Times in seconds; NaN where not captured."""

    input: np.ndarray
    output: np.ndarray
    reused: np.ndarray
    new: np.ndarray
    reuse_ratio: np.ndarray
    wait: np.ndarray
    after: np.ndarray  # codes into corpus.records.AFTER
    ttft: np.ndarray
    speed: np.ndarray
    stop: np.ndarray  # 0 = none, else 1 + index into the table's stop_vocab

    def waits(self, after: str) -> np.ndarray:
        """Waits of the turns whose `after` is `after` (start, tool or user)."""
        return self.wait[self.after == AFTER.index(after)]


def untimed(table: Table) -> bool:
    """True when a corpus of several turns recorded no time at all (every `t` and `wait` is 0,
    as importers write for sources without timings): its waits are unknown, not zero."""
    c = table.turns
    return table.n_turns > 1 and not c["t"].any() and not c["wait"].any()


def turn_metrics(table: Table) -> TurnMetrics:
    """Per-turn token, reuse, wait and speed arrays of `table`."""
    c = table.turns
    bs = table.header.block_size
    inp = c["input"].astype(np.int64)
    out = c["output"].astype(np.int64)
    reused = np.minimum(inp, c["reuse"].astype(np.int64) * bs)
    new = inp - reused
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(inp > 0, reused / np.maximum(inp, 1), np.nan)
    ttft = c["ttft"].astype(np.float64)
    dur = c["duration"].astype(np.float64)
    gen = dur - ttft
    ok = np.isfinite(gen) & (gen > 0) & (out > 0)
    speed = np.full(inp.shape, np.nan)
    speed[ok] = out[ok] / gen[ok]
    wait = c["wait"].astype(np.float64)
    if untimed(table):
        wait = np.full(inp.shape, np.nan)  # no timings recorded: zeros would read as "no wait"
    return TurnMetrics(
        input=inp,
        output=out,
        reused=reused,
        new=new,
        reuse_ratio=ratio,
        wait=wait,
        after=c["after"].astype(np.int64),
        ttft=ttft,
        speed=speed,
        stop=c["stop"].astype(np.int64),
    )


def recount(turns: TurnMetrics, input: np.ndarray, reused: np.ndarray) -> TurnMetrics:
    """`turns` with other input and reused counts (the provider's; see `corpus.counts`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(input > 0, reused / np.maximum(input, 1), np.nan)
    return replace(turns, input=input, reused=reused, new=input - reused, reuse_ratio=ratio)


@dataclass(frozen=True)
class SessionMetrics:
    """Per-session arrays over the sessions that have at least one turn."""

    turns: np.ndarray
    duration: np.ndarray
    final_context: np.ndarray
    input: np.ndarray
    output: np.ndarray
    subagents: np.ndarray  # direct children
    is_subagent: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @property
    def tokens(self) -> np.ndarray:
        """Input plus output tokens of each session."""
        return self.input + self.output


def session_metrics(table: Table, lay: Layout, turns: TurnMetrics) -> SessionMetrics:
    """Per-session counts, durations and token totals."""
    ns = lay.session_id.size
    s = lay.session
    count = np.bincount(s, minlength=ns)
    t = np.nan_to_num(table.turns["t"].astype(np.float64), nan=0.0)
    end_rel = t + np.nan_to_num(table.turns["duration"].astype(np.float64), nan=0.0)
    duration = np.zeros(ns, dtype=np.float64)
    if s.size:
        np.maximum.at(duration, s, end_rel)
    last = np.full(ns, -1, dtype=np.int64)
    if s.size:
        # The last turn of a session is the one with the highest turn number.
        by = np.lexsort((lay.turn_no, s))
        tail = np.r_[s[by][1:] != s[by][:-1], True]
        last[s[by][tail]] = by[tail]
    final = np.zeros(ns, dtype=np.int64)
    has = last >= 0
    final[has] = turns.input[last[has]] + turns.output[last[has]]
    tot_in = np.bincount(s, weights=turns.input, minlength=ns).astype(np.int64)
    tot_out = np.bincount(s, weights=turns.output, minlength=ns).astype(np.int64)
    kids = lay.parent[lay.parent >= 0]
    subagents = np.bincount(kids, minlength=ns) if kids.size else np.zeros(ns, dtype=np.int64)
    keep = count > 0
    return SessionMetrics(
        turns=count[keep],
        duration=duration[keep],
        final_context=final[keep],
        input=tot_in[keep],
        output=tot_out[keep],
        subagents=subagents[keep],
        is_subagent=(lay.parent >= 0)[keep],
        start=lay.start[keep],
        end=(lay.start + duration)[keep],
    )


def grouped_percentiles(
    values: np.ndarray, group: np.ndarray, qs: tuple[float, ...], limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each group g in 0..limit-1: its count and the `qs` percentiles (linear
    interpolation, like numpy) of `values` in it; rows of NaN for empty groups."""
    keep = (group >= 0) & (group < limit) & np.isfinite(values)
    v = values[keep].astype(np.float64)
    g = group[keep]
    by = np.lexsort((v, g))
    v, g = v[by], g[by]
    counts = np.bincount(g, minlength=limit)[:limit]
    begin = np.r_[0, np.cumsum(counts)[:-1]]
    out = np.full((limit, len(qs)), np.nan)
    full = counts > 0
    for j, q in enumerate(qs):
        pos = begin[full] + (q / 100.0) * (counts[full] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, begin[full] + counts[full] - 1)
        frac = pos - lo
        out[full, j] = v[lo] * (1 - frac) + v[hi] * frac
    return counts, out


@dataclass(frozen=True)
class Arrivals:
    """Session arrival pattern: inter-arrival gaps and concurrency over time."""

    gaps: np.ndarray  # seconds between consecutive session starts
    span: float  # seconds from the first start to the last end
    concurrency_max: int
    concurrency_mean: float  # time-weighted over the span
    samples: np.ndarray  # concurrency at `points` evenly spaced instants over the span
    sample_times: np.ndarray


def arrivals(sessions: SessionMetrics, points: int = 200) -> Arrivals:
    """Arrival gaps and the number of sessions open at once (a session is open from its start
    to its end; one ending exactly when another starts does not overlap it)."""
    starts = np.sort(sessions.start)
    gaps = np.diff(starts)
    if not starts.size:
        empty = np.zeros(0)
        return Arrivals(empty, 0.0, 0, 0.0, empty, empty)
    times = np.r_[sessions.start, sessions.end]
    delta = np.r_[np.ones(sessions.start.size), -np.ones(sessions.end.size)]
    by = np.lexsort((delta, times))  # ends (-1) before starts (+1) at equal times
    times, level = times[by], np.cumsum(delta[by])
    t0, t1 = float(times[0]), float(times[-1])
    span = t1 - t0
    mean = float(np.sum(level[:-1] * np.diff(times)) / span) if span > 0 else float(level.max())
    grid = np.linspace(t0, t1, points) if span > 0 else np.full(1, t0)
    idx = np.searchsorted(times, grid, side="right") - 1
    samples = np.where(idx >= 0, level[np.maximum(idx, 0)], 0.0)
    return Arrivals(gaps, span, int(level.max()), mean, samples, grid - t0)
