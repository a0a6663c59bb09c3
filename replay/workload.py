"""The corpus as a replay workload: its sessions, their tree (sub-agents under the session that
spawned them), which blocks they share, and the deal that hands top-level sessions to agents.

Dealing is static and seeded, so it does not depend on timing or on how agents are spread over
processes: agent `a` of `n` takes deal slots a, a+n, a+2n, …; slot s is position s mod S of
cycle s div S, and each cycle is its own seeded permutation of the S *top-level* sessions.
Every (session, cycle) pair is dealt at most once per level. Sub-agent sessions are never
dealt: they are replayed inside the agent that replays their top-level session (see `Child`),
so a session tree never splits across agents or worker processes. A session whose parent is
not in the workload (not in the file, or without turns) is top-level.

Sub-agent schedule. A sub-agent's recorded offset is `off = max(0, sub.start − parent.start)`.
It is anchored to the parent's turn timeline rather than to the wall clock, so the causal order
of the recording survives a server that is slower or faster than the recorded one:

- launch: the anchor is the parent's last turn with `t < off` (the turn whose response made the
  Task call). The sub-agent starts when that turn's response has arrived in the replay, plus the
  recorded rest of the gap, `off − (anchor.t + anchor.duration)` (≥ 0, through the wait
  policy). With no such turn (`off` ≤ the first turn's `t`) it starts `off` after the parent's
  own start (through the wait policy).
- join: the parent's turn `j` is not sent before every sub-agent whose recorded end (its last
  turn's `t + duration`, or a later end of its own sub-agents, as an offset from the parent's
  start) is ≤ `turns[j].t` has finished: such a turn consumed that sub-agent's result. It is
  sent at the later of its own wait and that finish. Sub-agents that outlive the parent's last
  turn are joined when the parent's session ends.

Nested sub-agents follow the same rules against their own parent. A tree's replay ends when its
top-level session and every sub-agent in it have finished.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from corpus import CorpusError, Header, Reader, Session
from replay.errors import ReplayError


@dataclass(frozen=True)
class Child:
    """A sub-agent of a session, scheduled against its parent's turns (module docstring)."""

    index: int
    """The sub-agent's position in `Workload.sessions`."""
    anchor: int
    """Launch after the response of the parent's turn `anchor` (-1: from the parent's start)."""
    gap: float
    """Recorded seconds from that point to the sub-agent's start (before the wait policy)."""
    join: int
    """The parent's turn that waits for this sub-agent to finish (`len(turns)`: its end)."""


def _tree(
    sessions: tuple[Session, ...],
) -> tuple[tuple[int, ...], dict[int, tuple[Child, ...]]]:
    """(top-level session indexes in file order, each parent index's sub-agents in file order)."""
    where = {s.id: i for i, s in enumerate(sessions)}
    parent_of: dict[int, int] = {}
    for i, s in enumerate(sessions):
        p = where.get(s.parent) if s.parent is not None else None
        if p is not None and p != i:
            parent_of[i] = p
    for i in list(parent_of):  # break cycles (a damaged file): the first session seen is a root
        seen = {i}
        j = parent_of.get(i)
        while j is not None:
            if j in seen:
                parent_of.pop(j, None)
                break
            seen.add(j)
            j = parent_of.get(j)
    kids: dict[int, list[int]] = {}
    for i in range(len(sessions)):
        if i in parent_of:
            kids.setdefault(parent_of[i], []).append(i)
    ends: dict[int, float] = {}

    def end(i: int) -> float:
        """Recorded end of session i and its sub-agents, in seconds after its own start."""
        if i in ends:
            return ends[i]
        s = sessions[i]
        last = s.turns[-1]
        e = last.t + (last.duration or 0.0)
        for k in kids.get(i, ()):
            e = max(e, max(0.0, sessions[k].start - s.start) + end(k))
        ends[i] = e
        return e

    children: dict[int, tuple[Child, ...]] = {}
    for p, ks in kids.items():
        parent = sessions[p]
        ts = [t.t for t in parent.turns]
        out: list[Child] = []
        for k in ks:
            off = max(0.0, sessions[k].start - parent.start)
            anchor = bisect.bisect_left(ts, off) - 1
            if anchor < 0:
                gap = off
            else:
                a = parent.turns[anchor]
                gap = max(0.0, off - a.t - (a.duration or 0.0))
            done = off + end(k)
            join = bisect.bisect_left(ts, done)
            out.append(Child(k, anchor, gap, max(join, anchor + 1)))
        children[p] = tuple(out)
    roots = tuple(i for i in range(len(sessions)) if i not in parent_of)
    return roots, children


@dataclass(frozen=True)
class Workload:
    """Sessions with at least one turn, in file order, and the corpus facts replay reports."""

    path: str
    header: Header
    sessions: tuple[Session, ...]
    shared: frozenset[int]
    """Block ids that occur in more than one session (system prompts, tool schemas)."""
    api: str
    """The most common recorded API (informational; the replay API is chosen separately)."""
    turns: int
    input_tokens: int
    output_tokens: int
    ideal_cache_ratio: float
    """Share of input tokens in leading full blocks seen earlier in the corpus (infinite cache,
    file order)."""
    roots: tuple[int, ...]
    """Indexes into `sessions` of the top-level sessions (the ones dealt), in file order."""
    children: dict[int, tuple[Child, ...]]
    """Sub-agents of each session index that has any."""
    damage: str | None = None
    """What was lost, when a damaged file was read with `allow_damaged`."""

    @property
    def sub_agents(self) -> int:
        """Sessions replayed inside another session's agent."""
        return len(self.sessions) - len(self.roots)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, allow_damaged: bool = False) -> Workload:
        """Read `path`; raises `ReplayError` for an unreadable or empty corpus, and for a
        damaged one (the message `corpus validate` gives) unless `allow_damaged`: then the
        intact frames are replayed."""
        name = os.fspath(path)
        if not os.path.exists(name):
            raise ReplayError(f"{name}: no such corpus file")
        try:
            reader = Reader(name, strict=not allow_damaged)
            sessions = tuple(s for s in reader.sessions() if s.turns)
        except CorpusError as exc:
            raise ReplayError(str(exc)) from exc
        if not sessions:
            raise ReplayError(f"{name}: the corpus has no turns to replay")
        header = reader.header
        owners: Counter[int] = Counter()
        apis: Counter[str] = Counter()
        turns = inp = out = 0
        seen: set[int] = set()
        hit_tokens = 0
        bs = max(1, header.block_size)
        for s in sessions:
            apis[s.api] += 1
            mine: set[int] = set()
            # A turn's prompt reuses the previous turn's leading `reuse` blocks (corpus format),
            # already in `mine` and, as far as they are full, in `seen`: only the rest is added
            # and searched, so a session costs its new blocks rather than turns x prompt length.
            last_blocks = last_full = 0
            for turn, blocks in zip(s.turns, s.prefixes(), strict=True):
                turns += 1
                inp += turn.input
                out += turn.output
                mine.update(blocks[min(turn.reuse, last_blocks) :])
                full = blocks[: turn.input // bs]
                n = k = min(turn.reuse, last_full, len(full))
                for b in full[k:]:
                    if b not in seen:
                        break
                    n += 1
                hit_tokens += n * bs
                seen.update(full[k:])
                last_blocks, last_full = len(blocks), len(full)
            owners.update(mine)
        shared = frozenset(b for b, n in owners.items() if n > 1)
        roots, children = _tree(sessions)
        return cls(
            path=name,
            header=header,
            sessions=sessions,
            shared=shared,
            api=apis.most_common(1)[0][0],
            turns=turns,
            input_tokens=inp,
            output_tokens=out,
            ideal_cache_ratio=hit_tokens / inp if inp else 0.0,
            roots=roots,
            children=children,
            damage=reader.damage.message(name, len(sessions)) if reader.damage else None,
        )


class Deck:
    """The seeded deal of `n_sessions` sessions to agents (see the module docstring)."""

    def __init__(self, n_sessions: int, seed: int) -> None:
        if n_sessions < 1:
            raise ValueError("a deck needs at least one session")
        self.n = n_sessions
        self.seed = seed

    @functools.lru_cache(maxsize=64)  # noqa: B019 - decks live as long as the run
    def _perm(self, cycle: int) -> tuple[int, ...]:
        rng = np.random.default_rng([self.seed, cycle])
        return tuple(int(i) for i in rng.permutation(self.n))

    def deal(self, agent: int, k: int, agents: int) -> tuple[int, int]:
        """(session index, cycle) of the `k`-th session of `agent` among `agents`."""
        slot = agent + k * agents
        cycle, pos = divmod(slot, self.n)
        return self._perm(cycle)[pos], cycle


def scope(level: int, cycle: int) -> int:
    """The private-content scope of one replay of a session: its level and deal cycle."""
    return (level << 32) | (cycle & 0xFFFFFFFF)
