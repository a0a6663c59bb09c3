"""The corpus as a replay workload: its sessions, which blocks they share, and the deal that
hands sessions to agents.

Dealing is static and seeded, so it does not depend on timing or on how agents are spread over
processes: agent `a` of `n` takes deal slots a, a+n, a+2n, …; slot s is position s mod S of
cycle s div S, and each cycle is its own seeded permutation of the S sessions. Every (session,
cycle) pair is dealt at most once per level.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from corpus import CorpusError, Header, Reader, Session
from replay.errors import ReplayError


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

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Workload:
        """Read `path`; raises `ReplayError` for an unreadable, damaged-at-start or empty corpus."""
        name = os.fspath(path)
        if not os.path.exists(name):
            raise ReplayError(f"{name}: no such corpus file")
        try:
            reader = Reader(name)
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
            for turn, blocks in zip(s.turns, s.prefixes(), strict=True):
                turns += 1
                inp += turn.input
                out += turn.output
                mine.update(blocks)
                full = blocks[: turn.input // bs]
                n = 0
                for b in full:
                    if b not in seen:
                        break
                    n += 1
                hit_tokens += n * bs
                seen.update(full)
            owners.update(mine)
        shared = frozenset(b for b, n in owners.items() if n > 1)
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
