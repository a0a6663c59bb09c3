"""Routers: which of a pool's engines serves a request (`--router`).

`round-robin` takes engines in turn; `least-loaded` the one with the fewest requests in flight;
`affinity` keeps a conversation on the engine that served its first request (least-loaded for a
new one); `prefix` sends a request to the engine that last served the longest prefix of its
blocks (an approximate KV index, as KV-aware routers keep, over every `STRIDE`th block so a
100K-token prompt costs a hundred lookups), unless that engine has more than twice the
least-loaded engine's requests in flight plus two, then to the least-loaded one.
Ties go to the lowest index, so routing is deterministic.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from replay.errors import ConfigError

ROUTERS = ("round-robin", "least-loaded", "affinity", "prefix")
STRIDE = 16
"""The prefix router indexes blocks STRIDE-1, 2*STRIDE-1, … (and matches to that grain)."""


class Router(Protocol):
    def pick(self, affinity: str, blocks: Sequence[int], load: Sequence[int]) -> int:
        """Index of the engine for a request, given each engine's requests in flight."""
        ...


def _least(load: Sequence[int]) -> int:
    return min(range(len(load)), key=load.__getitem__)


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def pick(self, affinity: str, blocks: Sequence[int], load: Sequence[int]) -> int:
        i = self._next % len(load)
        self._next = i + 1
        return i


class LeastLoaded:
    def pick(self, affinity: str, blocks: Sequence[int], load: Sequence[int]) -> int:
        return _least(load)


class Affinity:
    def __init__(self) -> None:
        self._home: dict[str, int] = {}

    def pick(self, affinity: str, blocks: Sequence[int], load: Sequence[int]) -> int:
        home = self._home.get(affinity)
        if home is None:
            home = self._home[affinity] = _least(load)
        return home


class Prefix:
    """`capacity` bounds the index (sampled blocks remembered, least recently routed forgotten
    first); size it to what the engines' caches can hold together."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._owner: OrderedDict[int, int] = OrderedDict()

    def match(self, blocks: Sequence[int]) -> tuple[int, int]:
        """(blocks matched, to a multiple of `STRIDE`; owner of the deepest) for the longest
        indexed prefix. The index is prefix-closed (every routed request indexes all its
        sampled blocks, and the deepest are forgotten first), so bisect on it."""
        owner = self._owner
        lo, hi = 0, len(blocks) // STRIDE
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if blocks[mid * STRIDE - 1] in owner:
                lo = mid
            else:
                hi = mid - 1
        return lo * STRIDE, owner[blocks[lo * STRIDE - 1]] if lo else -1

    def pick(self, affinity: str, blocks: Sequence[int], load: Sequence[int]) -> int:
        matched, home = self.match(blocks)
        least = _least(load)
        choice = home if matched and load[home] <= 2 * load[least] + 2 else least
        owner = self._owner
        # leading blocks most recent: forgetting the oldest keeps the index prefix-closed
        for j in range(len(blocks) // STRIDE * STRIDE - 1, 0, -STRIDE):
            b = blocks[j]
            owner[b] = choice
            owner.move_to_end(b)
        while len(owner) > self.capacity:
            owner.popitem(last=False)
        return choice


def make(name: str, *, capacity_blocks: int) -> Router:
    """The router called `name` (one of `ROUTERS`)."""
    if name == "round-robin":
        return RoundRobin()
    if name == "least-loaded":
        return LeastLoaded()
    if name == "affinity":
        return Affinity()
    if name == "prefix":
        return Prefix(capacity_blocks // STRIDE)
    raise ConfigError(f"router {name!r}: expected one of {', '.join(ROUTERS)}")
