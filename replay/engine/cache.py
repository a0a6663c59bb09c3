"""KV-cache accounting for the simulated engine: blocks in use plus an LRU prefix cache.

The KV cache is `capacity` blocks of `block_size` tokens. A block is either *private* (owned by
one running sequence: its partial prompt tail, its output, or prompt blocks still being
prefilled) or *cached* (a full prompt block known by its chained hash). Cached blocks are pinned
while any running sequence uses them and sit in an LRU list when none does; only those are
evicted. Invariant: `private + len(cached) <= capacity`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


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


class PrefixCache:
    """Block allocator with an LRU cache of full prompt blocks, keyed by chained block hash."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"KV capacity must be at least one block, got {capacity}")
        self.capacity = capacity
        self.private = 0
        self._refs: dict[int, int] = {}
        self._lru: OrderedDict[int, None] = OrderedDict()

    @property
    def used(self) -> int:
        """Blocks holding data: private plus cached (pinned or evictable)."""
        return self.private + len(self._refs)

    @property
    def cached(self) -> int:
        """Cached blocks (pinned and evictable)."""
        return len(self._refs)

    @property
    def evictable(self) -> int:
        """Cached blocks no running sequence uses."""
        return len(self._lru)

    @property
    def pinned(self) -> int:
        """Blocks a running sequence needs: private plus pinned cached."""
        return self.private + len(self._refs) - len(self._lru)

    def match(self, hashes: Sequence[int], limit: int | None = None) -> int:
        """How many leading `hashes` (at most `limit`) are cached."""
        n = 0
        refs = self._refs
        for h in hashes[:limit] if limit is not None else hashes:
            if h not in refs:
                break
            n += 1
        return n

    def reserve(self, hashes: Sequence[int], hit: int, blocks: int) -> bool:
        """Pin `hashes[:hit]` (cached) and allocate `blocks - hit` private blocks, evicting LRU
        blocks as needed; False, changing nothing, when they don't fit even after eviction."""
        refs, lru = self._refs, self._lru
        unpinned_hits = sum(1 for h in hashes[:hit] if refs[h] == 0)
        new = blocks - hit
        if new > self.capacity - self.used + len(lru) - unpinned_hits:
            return False
        for h in hashes[:hit]:
            if refs[h] == 0:
                del lru[h]
            refs[h] += 1
        evict = new - (self.capacity - self.used)
        for _ in range(evict):
            old, _none = lru.popitem(last=False)
            del refs[old]
        self.private += new
        return True

    def register(self, hashes: Sequence[int], start: int) -> None:
        """Turn the private blocks holding `hashes[start:]` (now computed) into pinned cached
        blocks; a hash another sequence registered meanwhile is shared and our copy freed."""
        refs, lru = self._refs, self._lru
        for h in hashes[start:]:
            count = refs.get(h)
            if count is None:
                refs[h] = 1
            else:
                if count == 0:
                    del lru[h]
                refs[h] = count + 1
        self.private -= len(hashes) - start

    def release(self, hashes: Sequence[int], private: int) -> None:
        """Unpin `hashes` (cached blocks a finished sequence used) and free its `private` blocks.

        Blocks are queued for eviction tail first, so a shared prefix outlives its extensions.
        """
        refs, lru = self._refs, self._lru
        for h in reversed(hashes):
            count = refs[h] - 1
            refs[h] = count
            if count == 0:
                lru[h] = None
        self.private -= private
