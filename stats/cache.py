"""Prefix-cache hit ratios of a corpus: an infinite cache, and LRU caches of every size.

Rules (the README repeats them):
- Requests are served in request order (`stats.arrays.layout`), each touching its full block
  list in order. Block j of a turn with `input` tokens holds min(block_size, max(0, input −
  j·block_size)) tokens: block_size, or the remainder for the last partial block; tokens beyond
  the last block are in no block and always miss.
- Infinite cache: a block is a hit when the same block (same id after the same prefix) was in
  an earlier request. A turn's inherited `reuse` prefix is therefore always a hit; a repeat
  inside one request is not.
- LRU cache of C blocks (C·block_size tokens): a touch hits when fewer than C distinct other
  blocks were touched since the block's previous touch (its LRU stack distance is < C).
- Ratios are hit tokens / all input tokens.

The LRU stack distances are exact and need no loop per touched block. Walking the prefix tree
(`stats.prefix`), the blocks of request r whose latest earlier toucher is the same request q
form one contiguous run starting at depth a, and every block of that run has the same stack
distance n_q − 1 − a + W(q, r), where n_q is q's block count and W(q, r) the number of distinct
blocks touched by the requests strictly between q and r. (Blocks of q deeper than the run
were touched by nobody since, because any request containing them contains the run too.) The
latest toucher of every block is kept as painted runs on the heavy paths of the tree, so each
request costs O(log n) runs, and W is a sum over a per-request count of the blocks it is still
the latest toucher of (kept with per-256-request block sums for long gaps).
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass

import numpy as np

from corpus import Table
from stats.arrays import Layout
from stats.prefix import Tree


def block_tokens(inputs: np.ndarray, depth: np.ndarray, block_size: int) -> np.ndarray:
    """Tokens held by the block at `depth` of a turn with `inputs` input tokens."""
    return np.clip(inputs - depth * block_size, 0, block_size)


def span_tokens(inputs: np.ndarray, lo: np.ndarray, hi: np.ndarray, block_size: int) -> np.ndarray:
    """Tokens held by blocks lo..hi (inclusive) of turns with `inputs` input tokens."""
    return np.minimum(inputs, (hi + 1) * block_size) - np.minimum(inputs, lo * block_size)


@dataclass(frozen=True)
class Hits:
    """Infinite-cache hits: per-turn hit tokens (file order) and the corpus totals."""

    per_turn: np.ndarray
    hit_tokens: int
    input_tokens: int

    @property
    def ratio(self) -> float:
        """Hit tokens / input tokens (NaN for a corpus without input)."""
        return self.hit_tokens / self.input_tokens if self.input_tokens else math.nan


def infinite(table: Table, lay: Layout, tree: Tree) -> Hits:
    """Hits under an infinite prefix cache (see the module rules)."""
    bs = table.header.block_size
    inputs = table.turns["input"].astype(np.int64)
    per_turn = np.minimum(inputs, tree.reuse * bs)  # inherited prefix: always a hit
    if tree.node.size:
        occ_rank = lay.rank.astype(tree.node.dtype)[tree.occ_turn]
        first = np.full(tree.nodes, np.iinfo(occ_rank.dtype).max, dtype=occ_rank.dtype)
        np.minimum.at(first, tree.node, occ_rank)
        hit = occ_rank > first[tree.node]
        w = block_tokens(inputs[tree.occ_turn[hit]], tree.occ_depth[hit], bs)
        per_turn = per_turn + np.bincount(
            tree.occ_turn[hit], weights=w, minlength=inputs.size
        ).astype(np.int64)
    return Hits(per_turn, int(per_turn.sum()), int(inputs.sum()))


@dataclass(frozen=True)
class LRU:
    """LRU hit tokens for every capacity: `distance` (sorted, in blocks) of every hit-able run
    of touches and its cumulative `tokens`; a touch hits a cache of C blocks when its
    distance < C."""

    distance: np.ndarray
    cumulative: np.ndarray
    input_tokens: int
    block_size: int

    def hit_tokens(self, capacity_tokens: float) -> int:
        """Tokens served from an LRU cache of `capacity_tokens` (whole blocks only)."""
        blocks = math.floor(capacity_tokens / self.block_size)
        k = int(np.searchsorted(self.distance, blocks, side="left"))
        return int(self.cumulative[k - 1]) if k else 0

    def ratio(self, capacity_tokens: float) -> float:
        """Hit ratio of an LRU cache of `capacity_tokens` (NaN without input)."""
        if not self.input_tokens:
            return math.nan
        return self.hit_tokens(capacity_tokens) / self.input_tokens

    @property
    def saturation_tokens(self) -> int:
        """Smallest capacity (tokens) at which the LRU cache reaches the infinite ratio."""
        return (int(self.distance[-1]) + 1) * self.block_size if self.distance.size else 0

    def curve(self, points_per_octave: int = 2) -> list[tuple[int, float]]:
        """(capacity tokens, hit ratio) from one block up to saturation, geometrically spaced;
        empty for a corpus without input."""
        if not self.input_tokens:
            return []
        top = max(self.saturation_tokens, self.block_size)
        octaves = math.log2(top / self.block_size)
        steps = max(1, math.ceil(octaves * points_per_octave))
        caps = sorted(
            {
                int(round(self.block_size * 2 ** (octaves * i / steps))) // self.block_size
                for i in range(steps + 1)
            }
        )
        return [(c * self.block_size, self.ratio(c * self.block_size)) for c in caps if c > 0]


def _pieces(lay: Layout, tree: Tree) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Heavy-path pieces of every request's path, root first: (start index per rank, head,
    top depth, bottom depth)."""
    nreq = lay.order.size
    leaf = tree.leaf[lay.order]
    rk = np.flatnonzero(leaf >= 0)
    v = leaf[rk]
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    while v.size:
        h = tree.head[v]
        parts.append((rk, h, tree.depth[h], tree.depth[v]))
        v = tree.parent[h]
        keep = v >= 0
        rk, v = rk[keep], v[keep]
    if not parts:
        z = np.zeros(0, dtype=np.int64)
        return np.zeros(nreq + 1, dtype=np.int64), z, z, z
    r = np.concatenate([p[0] for p in parts])
    head = np.concatenate([p[1] for p in parts])
    top = np.concatenate([p[2] for p in parts])
    bot = np.concatenate([p[3] for p in parts])
    by = np.lexsort((top, r))
    start = np.zeros(nreq + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=nreq), out=start[1:])
    return start, head[by], top[by], bot[by]


_CHUNK = 1 << 16
_SHIFT = 8  # requests per block of counts
_SPAN = 2 << _SHIFT  # gaps up to this are summed directly (must be ≥ block size − 1)


def lru(table: Table, lay: Layout, tree: Tree) -> LRU:
    """Exact LRU stack distances of every touch, grouped in runs (see the module docstring)."""
    bs = table.header.block_size
    inputs = table.turns["input"].astype(np.int64)
    start, head, top, bot = _pieces(lay, tree)
    # The loop allocates many small lists and no cycles: the cyclic GC would only rescan the
    # ~10⁶ live stacks over and over.
    enabled = gc.isenabled()
    gc.disable()
    try:
        dist, toks = _walk(
            start,
            head,
            top,
            bot,
            tree.length[lay.order].tolist(),
            inputs[lay.order].tolist(),
            bs,
        )
    finally:
        if enabled:
            gc.enable()
    d = np.asarray(dist, dtype=np.int64)
    w = np.asarray(toks, dtype=np.int64)
    by = np.argsort(d, kind="stable")
    return LRU(d[by], np.cumsum(w[by]), int(inputs.sum()), bs)


def _walk(
    start: np.ndarray,
    head: np.ndarray,
    top: np.ndarray,
    bot: np.ndarray,
    n_rank: list[int],
    in_rank: list[int],
    bs: int,
) -> tuple[list[int], list[int]]:
    """Paint each request's path in rank order; (stack distance, tokens) of every run of its
    blocks that an earlier request touched."""
    nreq = len(n_rank)
    # cnt[s]: blocks whose latest toucher is request s; blk[k]: sum of cnt over s >> SHIFT == k.
    # W(q, r) = sum(cnt[q+1:r]): latest touchers are mostly a few dozen requests back, so a
    # plain slice sum beats a Fenwick tree; long gaps add whole blocks.
    cnt = [0] * (nreq + 1)
    blk = [0] * ((nreq >> _SHIFT) + 2)
    stacks: dict[int, list[int]] = {}  # heavy path -> [end, label, end, label, …], top last
    dist: list[int] = []
    toks: list[int] = []
    seg: list[int] = []  # the current request's runs: label, lo, hi, label, lo, hi, …
    for c0 in range(0, nreq, _CHUNK):
        c1 = min(nreq, c0 + _CHUNK)
        p0, p1 = int(start[c0]), int(start[c1])
        heads = head[p0:p1].tolist()
        tops = top[p0:p1].tolist()
        bots = bot[p0:p1].tolist()
        bounds = (start[c0 : c1 + 1] - p0).tolist()
        for r in range(c0, c1):
            k0, k1 = bounds[r - c0], bounds[r - c0 + 1]
            if k0 == k1:
                continue
            seg.clear()
            for k in range(k0, k1):
                h = heads[k]
                lo = tops[k]
                b = bots[k]
                st = stacks.get(h)
                if st is None:
                    stacks[h] = [b, r]
                    continue
                while st and st[-2] <= b:
                    lab = st.pop()
                    end = st.pop()
                    if seg and seg[-3] == lab:
                        seg[-1] = end
                    else:
                        seg += (lab, lo, end)
                    lo = end + 1
                if st and lo <= b:
                    lab = st[-1]
                    if seg and seg[-3] == lab:
                        seg[-1] = b
                    else:
                        seg += (lab, lo, b)
                st += (b, r)
            inp = in_rank[r]
            for j in range(0, len(seg), 3):
                q = seg[j]
                lo = seg[j + 1]
                if r - q <= _SPAN:
                    w = sum(cnt[q + 1 : r])
                else:
                    qb = (q >> _SHIFT) + 1
                    rb = r >> _SHIFT
                    w = (
                        sum(cnt[q + 1 : qb << _SHIFT])
                        + sum(blk[qb:rb])
                        + sum(cnt[rb << _SHIFT : r])
                    )
                dist.append(n_rank[q] - 1 - lo + w)
                toks.append(min(inp, (seg[j + 2] + 1) * bs) - min(inp, lo * bs))
            for j in range(0, len(seg), 3):
                q = seg[j]
                m = seg[j + 2] - seg[j + 1] + 1
                cnt[q] -= m
                blk[q >> _SHIFT] -= m
            nr = n_rank[r]
            cnt[r] += nr
            blk[r >> _SHIFT] += nr
    return dist, toks
