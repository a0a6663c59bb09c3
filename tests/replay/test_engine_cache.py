"""The prefix cache's slot/stamp bookkeeping against the plain LRU it replaces: the same answers,
pin counts and eviction order after every operation, repeated hashes included."""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence

import pytest

from replay.engine import cache as cache_module
from replay.engine.cache import _PINNED, Pins, PrefixCache


class Reference:
    """The straightforward allocator: a pin count per hash and an OrderedDict as the LRU."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.private = 0
        self.refs: dict[int, int] = {}
        self.lru: OrderedDict[int, None] = OrderedDict()

    @property
    def used(self) -> int:
        return self.private + len(self.refs)

    def match(self, hashes: Sequence[int], limit: int | None = None) -> int:
        n = 0
        for h in hashes[:limit] if limit is not None else hashes:
            if h not in self.refs:
                break
            n += 1
        return n

    def reserve(self, hashes: Sequence[int], hit: int, blocks: int) -> bool:
        refs, lru = self.refs, self.lru
        unpinned_hits = sum(1 for h in hashes[:hit] if refs[h] == 0)
        new = blocks - hit
        if new > self.capacity - self.used + len(lru) - unpinned_hits:
            return False
        for h in hashes[:hit]:
            if refs[h] == 0:
                del lru[h]
            refs[h] += 1
        for _ in range(new - (self.capacity - self.used)):
            old, _none = lru.popitem(last=False)
            del refs[old]
        self.private += new
        return True

    def register(self, hashes: Sequence[int], start: int) -> None:
        for h in hashes[start:]:
            count = self.refs.get(h)
            if count is None:
                self.refs[h] = 1
            else:
                if count == 0:
                    del self.lru[h]
                self.refs[h] = count + 1
        self.private -= len(hashes) - start

    def release(self, hashes: Sequence[int], private: int) -> None:
        for h in reversed(hashes):
            self.refs[h] -= 1
            if self.refs[h] == 0:
                self.lru[h] = None
        self.private -= private


def state(cache: PrefixCache) -> tuple[dict[int, int], list[int], int]:
    """(pin count per cached hash, evictable hashes oldest first, private blocks)."""
    refs = {h: int(cache._refs[s]) for h, s in cache._slot.items()}
    lru = sorted((h for h, s in cache._slot.items() if cache._stamp[s] != _PINNED),
                 key=lambda h: int(cache._stamp[cache._slot[h]]))
    assert cache.evictable == len(lru)
    assert all(refs[h] == 0 for h in lru)
    return refs, lru, cache.private


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("by_pins", [True, False])
def test_same_answers_counts_and_eviction_order_as_a_plain_lru(
    seed: int, by_pins: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if seed % 2:  # the slot arrays start small and grow
        monkeypatch.setattr(cache_module, "FIRST_SLOTS", 2)
    rng = random.Random(seed)
    capacity = rng.choice([6, 20, 64])
    new, ref = PrefixCache(capacity), Reference(capacity)
    running: list[tuple[list[int], int, int, Pins | None]] = []
    repeats = seed % 3 == 0  # non-chained block ids: a prompt may list a block twice
    for _ in range(300):
        if running and (rng.random() < 0.45 or len(running) > 6):
            hashes, pinned, private, pins = running.pop(rng.randrange(len(running)))
            new.release(hashes[:pinned], private, pins if by_pins else None)
            ref.release(hashes[:pinned], private)
        else:
            family = rng.randrange(4)
            length = rng.randrange(1, 30)
            pool = 6 if repeats else 10**6
            hashes = [family * 10**7 + (rng.randrange(pool) if repeats else i)
                      for i in range(length)]
            blocks = length + rng.randrange(0, 4)
            limit = rng.randrange(length + 1)
            assert new.match(hashes, limit) == ref.match(hashes, limit)
            hit = ref.match(hashes, limit)
            if by_pins:
                pins = new.admit(hashes, limit, blocks)
                ok = pins is not None
                assert pins is None or pins.hit == hit
            else:
                pins, ok = None, new.reserve(hashes, hit, blocks)
            assert ok == ref.reserve(hashes, hit, blocks)
            if ok:
                if rng.random() < 0.8:  # prefill completes; else released mid-prefill
                    new.register(hashes, hit, pins)
                    ref.register(hashes, hit)
                    running.append((hashes, length, blocks - length, pins))
                else:
                    running.append((hashes, hit, blocks - hit, pins))
        assert state(new) == (ref.refs, list(ref.lru), ref.private)
        assert new.used == ref.used <= capacity


def test_the_unpin_queue_stays_bounded_when_nothing_is_evicted() -> None:
    cache = PrefixCache(capacity=1000)
    hashes = list(range(100))
    pins = cache.admit(hashes, 100, 100)
    assert pins is not None
    assert pins.hit == 0
    cache.register(hashes, 0, pins)
    cache.release(hashes, 0, pins)
    for _ in range(200):  # the same prompt again and again: every unpin queues 100 slots
        pins = cache.admit(hashes, 100, 100)
        assert pins is not None
        assert pins.hit == 100
        cache.release(hashes, 0, pins)
    assert cache._queued <= 4 * cache.capacity + 1024
    assert cache.evictable == 100
