"""KV-cache accounting for the simulated engine: blocks in use plus an LRU prefix cache.

The KV cache is `capacity` blocks of `block_size` tokens. A block is either *private* (owned by
one running sequence: its partial prompt tail, its output, or prompt blocks still being
prefilled) or *cached* (a full prompt block known by its chained hash). Cached blocks are pinned
while any running sequence uses them and sit in an LRU list when none does; only those are
evicted. Invariant: `private + len(cached) <= capacity`.

The LRU order is exact: a block's place is when it last became unpinned (a finished sequence's
blocks tail first), and eviction takes the oldest. A prompt is hundreds of blocks that flip
between pinned and unpinned on every request, so the per-block work is numpy over slot numbers:
each cached block has a slot with a pin count and an unpin stamp, and unpinned blocks queue in
stamp order as whole arrays, an entry going stale when its block is pinned again (its stamp
changed), so a request costs a few array operations instead of a Python loop per block.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import compress, repeat
from operator import is_

import numpy as np


def block_hashes(ids: Sequence[int], block_size: int) -> list[int]:
    """Chained hashes of the full `block_size` blocks of `ids`: block j's hash covers 0..j.

    Python's tuple hash of ints is deterministic across processes and runs in C; one tuple per
    block keeps a 100K-token prompt at a few milliseconds.
    """
    out: list[int] = []
    h = 0
    for i in range(0, len(ids) - block_size + 1, block_size):
        h = hash((h, tuple(ids[i : i + block_size])))
        out.append(h)
    return out


def tail_hash(ids: Sequence[int], hashes: Sequence[int], block_size: int) -> int:
    """Hash of the whole of `ids` (the full blocks' chain plus the partial tail)."""
    start = len(hashes) * block_size
    return hash((hashes[-1] if hashes else 0, len(ids), tuple(ids[start:])))


_PINNED = np.iinfo(np.int64).max
"""The stamp of a slot whose block is pinned, or of an empty slot (never evictable)."""

FIRST_SLOTS = 4096
"""Slots the arrays start with; they double as blocks are cached, up to the capacity (a big
KV cache on many replicas may stay mostly empty, and costs memory only as it fills)."""

_CHUNK = 64
"""Hashes looked up per pass when matching (a miss ends the match early)."""


class Pins:
    """The cached blocks one sequence pins, as slots (`admit` makes it, `register` extends it,
    `release` takes it back): releasing by slot needs no hash lookups."""

    __slots__ = ("repeats", "slots")

    def __init__(self, slots: list[int]) -> None:
        self.slots = np.array(slots, dtype=np.int64)
        self.repeats = len(set(slots)) != len(slots)
        """Some block is listed twice (corpora whose block ids are not prefix-chained)."""

    @property
    def hit(self) -> int:
        return int(self.slots.size)


class PrefixCache:
    """Block allocator with an LRU cache of full prompt blocks, keyed by chained block hash."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"KV capacity must be at least one block, got {capacity}")
        self.capacity = capacity
        self.private = 0
        self._slot: dict[int, int] = {}
        """Block hash -> slot, for every cached block."""
        self._hash: dict[int, int] = {}
        """Slot -> block hash, for every cached block."""
        self._free: list[int] = []
        """Slots emptied by eviction; slots from `_top` up were never used."""
        self._top = 0
        size = min(capacity, FIRST_SLOTS)
        self._refs = np.zeros(size, dtype=np.int64)
        """Running sequences that pin each slot's block (0: evictable, or empty)."""
        self._stamp = np.full(size, _PINNED, dtype=np.int64)
        """When each evictable slot's block became unpinned; `_PINNED` otherwise."""
        self._clock = 0
        self._evictable = 0
        self._queue: deque[tuple[np.ndarray, np.ndarray]] = deque()
        """(slots, their stamps) in stamp order; an entry whose slot's stamp differs is stale."""
        self._queued = 0

    @property
    def used(self) -> int:
        """Blocks holding data: private plus cached (pinned or evictable)."""
        return self.private + len(self._slot)

    @property
    def cached(self) -> int:
        """Cached blocks (pinned and evictable)."""
        return len(self._slot)

    @property
    def evictable(self) -> int:
        """Cached blocks no running sequence uses."""
        return self._evictable

    @property
    def pinned(self) -> int:
        """Blocks a running sequence needs: private plus pinned cached."""
        return self.private + len(self._slot) - self._evictable

    def _hits(self, hashes: Sequence[int], limit: int | None) -> list[int]:
        """Slots of the leading cached `hashes[:limit]` (C-level passes of `_CHUNK`)."""
        get = self._slot.get
        end = len(hashes) if limit is None else max(0, min(limit, len(hashes)))
        out: list[int] = []
        for i in range(0, end, _CHUNK):
            part = list(map(get, hashes[i : min(i + _CHUNK, end)]))
            if None in part:
                out.extend(part[: part.index(None)])  # type: ignore[arg-type]
                break
            out.extend(part)  # type: ignore[arg-type]
        return out

    def match(self, hashes: Sequence[int], limit: int | None = None) -> int:
        """How many leading `hashes` (at most `limit`) are cached."""
        return len(self._hits(hashes, limit))

    def admit(self, hashes: Sequence[int], limit: int, blocks: int) -> Pins | None:
        """`match(hashes, limit)`, then `reserve` those hits and `blocks` in all: the hits'
        `Pins` (for `register` and `release`), or None, changing nothing, when the blocks
        don't fit."""
        if blocks - max(0, min(limit, len(hashes))) > self.capacity - self.used + self._evictable:
            return None  # even if every hit were cached and free, the rest would not fit
        pins = Pins(self._hits(hashes, limit))
        return pins if self._reserve(pins, blocks) else None

    def reserve(self, hashes: Sequence[int], hit: int, blocks: int) -> bool:
        """Pin `hashes[:hit]` (cached) and allocate `blocks - hit` private blocks, evicting LRU
        blocks as needed; False, changing nothing, when they don't fit even after eviction."""
        slot = self._slot
        return self._reserve(Pins([slot[h] for h in hashes[:hit]]), blocks)

    def _reserve(self, pins: Pins, blocks: int) -> bool:
        refs, idx = self._refs, pins.slots
        free = refs[idx] == 0
        unpinned_hits = int(np.count_nonzero(free))  # a repeated hash counts each time
        new = blocks - idx.size
        if new > self.capacity - self.used + self._evictable - unpinned_hits:
            return False
        if unpinned_hits:
            self._pin(idx[free], pins.repeats)
        np.add.at(refs, idx, 1)
        evict = new - (self.capacity - self.used)
        if evict > 0:
            self._evict(evict)
        self.private += new
        return True

    def _pin(self, slots: np.ndarray, repeats: bool) -> None:
        """Take the evictable `slots` (listed once, or more when `repeats`) out of the LRU."""
        self._evictable -= len(set(slots.tolist())) if repeats else slots.size
        self._stamp[slots] = _PINNED

    def _evict(self, n: int) -> None:
        """Drop the `n` least recently unpinned blocks."""
        stamp, queue = self._stamp, self._queue
        taken: list[np.ndarray] = []
        while n:
            slots, stamps = queue[0]
            valid = np.flatnonzero(stamp[slots] == stamps)
            if valid.size > n:
                cut = int(valid[n - 1]) + 1
                taken.append(slots[valid[:n]])
                queue[0] = (slots[cut:], stamps[cut:])
                self._queued -= cut
                n = 0
            else:
                taken.append(slots[valid])
                queue.popleft()
                self._queued -= slots.size
                n -= valid.size
        gone = np.concatenate(taken) if len(taken) > 1 else taken[0]
        stamp[gone] = _PINNED
        self._evictable -= gone.size
        slot, hash_of = self._slot, self._hash
        dropped = gone.tolist()
        for s in dropped:
            del slot[hash_of.pop(s)]
        self._free.extend(dropped)

    def _take(self, n: int) -> list[int]:
        """`n` empty slots."""
        free = self._free
        k = min(n, len(free))
        taken = free[len(free) - k :]
        del free[len(free) - k :]
        if k < n:
            start, self._top = self._top, self._top + n - k
            taken.extend(range(start, self._top))
            size = self._refs.size
            if self._top > size:
                grown = min(self.capacity, max(self._top, 2 * size))
                self._refs = np.concatenate((self._refs, np.zeros(grown - size, np.int64)))
                self._stamp = np.concatenate(
                    (self._stamp, np.full(grown - size, _PINNED, np.int64)))
        return taken

    def register(self, hashes: Sequence[int], start: int, pins: Pins | None = None) -> None:
        """Turn the private blocks holding `hashes[start:]` (now computed) into pinned cached
        blocks; a hash another sequence registered meanwhile is shared and our copy freed.
        `pins` (the sequence's, from `admit`, holding `hashes[:start]`) grows by these blocks."""
        slot = self._slot
        todo = hashes[start:]
        repeats = len(set(hashes)) != len(hashes)
        slots = list(map(slot.get, todo))
        fresh = slots.count(None)
        if fresh:
            if not repeats:  # new blocks take free slots, in one C-level pass
                new = list(compress(todo, map(is_, slots, repeat(None))))
                taken = self._take(fresh)
                slot.update(zip(new, taken, strict=True))
                self._hash.update(zip(taken, new, strict=True))
                slots = list(map(slot.__getitem__, todo))
            else:  # a hash listed twice: the first listing caches it, the second shares it
                slots = []
                for h in todo:
                    s = slot.get(h)
                    if s is None:
                        s = slot[h] = self._take(1)[0]
                        self._hash[s] = h
                    slots.append(s)
        if slots:
            idx = np.array(slots, dtype=np.int64)
            was = idx[self._stamp[idx] != _PINNED]  # evictable until now
            if was.size:
                self._pin(was, repeats)
            np.add.at(self._refs, idx, 1)
            if pins is not None:  # now it pins all of `hashes`
                pins.repeats = repeats
                pins.slots = np.concatenate((pins.slots, idx))
        self.private -= len(hashes) - start

    def release(self, hashes: Sequence[int], private: int, pins: Pins | None = None) -> None:
        """Unpin `hashes` (cached blocks a finished sequence used; or given as their `pins`)
        and free its `private` blocks.

        Blocks are queued for eviction tail first, so a shared prefix outlives its extensions.
        """
        if pins is None:
            slot = self._slot
            pins = Pins([slot[h] for h in hashes])
        if pins.slots.size:
            idx = pins.slots[::-1]
            refs = self._refs
            np.subtract.at(refs, idx, 1)
            zero = idx[refs[idx] == 0]
            if zero.size:
                if pins.repeats:  # a block listed twice became unpinned at its last listing
                    last = {s: i for i, s in enumerate(zero.tolist())}
                    zero = zero[sorted(last.values())]
                stamps = np.arange(self._clock, self._clock + zero.size, dtype=np.int64)
                self._clock += zero.size
                self._stamp[zero] = stamps
                self._evictable += zero.size
                self._queue.append((zero, stamps))
                self._queued += zero.size
                if self._queued > 4 * self.capacity + 1024:
                    self._compact()
        self.private -= private

    def _compact(self) -> None:
        """Drop the queue's stale entries (they cost memory until an eviction reaches them)."""
        slots = np.concatenate([q[0] for q in self._queue])
        stamps = np.concatenate([q[1] for q in self._queue])
        keep = self._stamp[slots] == stamps
        self._queue = deque([(slots[keep], stamps[keep])])
        self._queued = int(np.count_nonzero(keep))
