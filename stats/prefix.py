"""The prefix tree of a corpus: every distinct block as a node, in vectorized numpy.

A turn's full block list is the first `reuse` blocks of the previous turn of its session
followed by its own new blocks (`Table.blocks[block_start[i]:block_start[i+1]]`). Because a
block id stands for its whole prefix, the blocks form a tree: a node's parent is the block
before it and its depth is its position, and a turn's block list is the path from a root to
its last block (its *leaf*). Only the new blocks are ever materialized; inherited prefixes are
located by walking back through earlier turns (`_locate`), never copied.

Ids that break the format's rule (the same id at two depths, or after two different blocks)
are split into one node per distinct prefix, so a node always means "this block after exactly
this prefix" — what a real prefix cache can reuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from corpus import Table
from stats.arrays import Layout


@dataclass(frozen=True)
class Tree:
    """The blocks of a table as a tree, with a heavy-path decomposition.

    Per turn (file order): `length` (full block count), `reuse` (inherited blocks, clipped to
    the previous turn's length), `leaf` (node of the last block, -1 when none). Per new-block
    occurrence (aligned with `Table.blocks`): `node`, `occ_turn`, `occ_depth`. Per node:
    `parent` (-1 at a root), `depth`, `head` (top node of its heavy path). `split` tells
    whether ids had to be split by prefix.
    """

    length: np.ndarray
    reuse: np.ndarray
    leaf: np.ndarray
    node: np.ndarray
    occ_turn: np.ndarray
    occ_depth: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    head: np.ndarray
    split: bool

    @property
    def nodes(self) -> int:
        return int(self.parent.size)


def _effective_reuse(reuse: np.ndarray, nblocks: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """`reuse` clipped so no turn inherits more blocks than its previous turn has."""
    eff = np.where(prev >= 0, reuse, 0).astype(np.int64)
    has = np.flatnonzero(prev >= 0)
    while has.size:
        length = eff + nblocks
        over = has[eff[has] > length[prev[has]]]
        if not over.size:
            break
        eff[over] = length[prev[over]]
        has = over
    return eff


def _locate(
    turn: np.ndarray, depth: np.ndarray, reuse: np.ndarray, prev: np.ndarray, bstart: np.ndarray
) -> np.ndarray:
    """Index into `Table.blocks` of the block at `depth` in each `turn`'s full list: walk back
    through previous turns while the depth lies in the inherited prefix."""
    turn = turn.astype(np.int64, copy=True)
    out = np.empty(turn.size, dtype=np.int64)
    active = np.arange(turn.size)
    while active.size:
        t = turn[active]
        d = depth[active]
        here = d >= reuse[t]
        out[active[here]] = bstart[t[here]] + d[here] - reuse[t[here]]
        active = active[~here]
        turn[active] = prev[turn[active]]
    return out


def _dense(ids: np.ndarray) -> np.ndarray:
    """Block ids as dense non-negative ints (ids are already dense in a well-formed file)."""
    if not ids.size or (int(ids.min()) >= 0 and int(ids.max()) < 2 * ids.size + 1024):
        return ids
    return np.unique(ids, return_inverse=True)[1].astype(np.int64)


def _split_by_prefix(node: np.ndarray, parent_pos: np.ndarray, occ_depth: np.ndarray) -> np.ndarray:
    """One node per distinct (parent node, id), built depth by depth."""
    out = np.empty(node.size, dtype=np.int64)
    by = np.argsort(occ_depth, kind="stable")
    bounds = np.searchsorted(occ_depth[by], np.arange(int(occ_depth.max()) + 2))
    radix = int(node.max()) + 1
    nxt = 0
    for d in range(bounds.size - 1):
        occ = by[bounds[d] : bounds[d + 1]]
        if not occ.size:
            continue
        pp = parent_pos[occ]
        pnode = np.where(pp >= 0, out[np.maximum(pp, 0)], -1)
        key = (pnode + 1) * radix + node[occ]
        uniq, inv = np.unique(key, return_inverse=True)
        out[occ] = nxt + inv
        nxt += uniq.size
    return out


def _heavy_heads(parent: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Head of each node's heavy path (heavy child = a child with the largest subtree).

    Level by level, every step one numpy call over one depth. Within a level the nodes are in
    id order, so a child finds its parent's slot in the level above by binary search and all
    per-level arithmetic runs on small local arrays (random access into the node-sized arrays
    is what makes a 10⁷-node tree slow).
    """
    n = parent.size
    head = np.arange(n, dtype=parent.dtype)
    if not n or int(depth.max()) < 1:
        return head
    maxd = int(depth.max())
    # a stable sort of small ints is a radix sort: linear, unlike the general one
    key = depth.astype(np.int16) if maxd < 2**15 - 1 else depth
    by = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[by], np.arange(-1, maxd + 2))
    del key
    level = [by[bounds[d + 1] : bounds[d + 2]] for d in range(maxd + 1)]  # depth -1: unused
    up: list[np.ndarray] = [np.zeros(0, dtype=np.intp)] * (maxd + 1)  # slot of each parent
    heavy: list[np.ndarray] = [np.zeros(0, dtype=bool)] * (maxd + 1)
    size = np.ones(level[maxd].size, dtype=np.int64)
    for d in range(maxd, 0, -1):
        pp = np.searchsorted(level[d - 1], parent[level[d]])
        up[d] = pp
        width = level[d - 1].size
        best = np.zeros(width, dtype=np.int64)
        np.maximum.at(best, pp, size)
        pick = np.full(width, -1, dtype=np.intp)
        cand = np.flatnonzero(size == best[pp])
        pick[pp[cand]] = cand  # one child per parent, whichever tie wins
        mark = np.zeros(level[d].size, dtype=bool)
        mark[pick[pick >= 0]] = True
        heavy[d] = mark
        size = 1 + np.bincount(pp, weights=size, minlength=width).astype(np.int64)
    top = level[0]
    for d in range(1, maxd + 1):
        mine = np.where(heavy[d], top[up[d]], level[d])
        head[level[d]] = mine
        top = mine
    return head


def tree(table: Table, lay: Layout) -> Tree:
    """The prefix tree of `table`'s turns."""
    nb = table.turns["nblocks"].astype(np.int64)
    bstart = table.block_start.astype(np.int64)
    reuse = _effective_reuse(table.turns["reuse"].astype(np.int64), nb, lay.prev)
    length = reuse + nb
    nturns = nb.size
    nocc = int(bstart[-1]) if bstart.size else 0
    idx: type[np.signedinteger[Any]] = np.int32 if max(nocc, nturns) < 2**31 - 1 else np.int64

    occ_turn = np.repeat(np.arange(nturns, dtype=idx), nb)
    occ_depth = np.arange(nocc, dtype=idx) - np.repeat((bstart[:-1] - reuse).astype(idx), nb)

    # Parent of each new block: the block before it in the same turn, or for a turn's first
    # new block, the last inherited one (located in an earlier turn).
    parent_pos = np.arange(-1, nocc - 1, dtype=idx)
    firsts = bstart[:-1][nb > 0]
    parent_pos[firsts] = -1
    inherit = firsts[occ_depth[firsts] > 0]
    if inherit.size:
        t = occ_turn[inherit]
        parent_pos[inherit] = _locate(lay.prev[t], reuse[t] - 1, reuse, lay.prev, bstart)

    node = _dense(table.blocks).astype(idx)
    nnodes = int(node.max()) + 1 if node.size else 0
    pnode = node[parent_pos]
    pnode[parent_pos < 0] = -1
    depth = np.full(nnodes, -1, dtype=idx)
    parent = np.full(nnodes, -1, dtype=idx)
    depth[node] = occ_depth
    parent[node] = pnode
    split = bool(node.size) and not (
        np.array_equal(depth[node], occ_depth) and np.array_equal(parent[node], pnode)
    )
    if split:
        node = _split_by_prefix(node, parent_pos, occ_depth).astype(idx)
        nnodes = int(node.max()) + 1
        pnode = node[parent_pos]
        pnode[parent_pos < 0] = -1
        depth = np.full(nnodes, -1, dtype=idx)
        parent = np.full(nnodes, -1, dtype=idx)
        depth[node] = occ_depth
        parent[node] = pnode
    del parent_pos, pnode

    leaf = np.full(nturns, -1, dtype=idx)
    own = nb > 0
    leaf[own] = node[bstart[1:][own] - 1]
    borrowed = np.flatnonzero(~own & (length > 0))
    if borrowed.size:
        pos = _locate(lay.prev[borrowed], length[borrowed] - 1, reuse, lay.prev, bstart)
        leaf[borrowed] = node[pos]
    return Tree(
        length=length,
        reuse=reuse,
        leaf=leaf,
        node=node,
        occ_turn=occ_turn,
        occ_depth=occ_depth,
        parent=parent,
        depth=depth,
        head=_heavy_heads(parent, depth),
        split=split,
    )
