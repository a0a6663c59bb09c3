"""Cutting a `corpus.Table` down to some of its sessions (e.g. `--top-level`)."""

from __future__ import annotations

import numpy as np

from corpus import Table


def sessions(table: Table, keep: np.ndarray) -> Table:
    """The table of the sessions whose ids are in `keep`, their turns and block ids."""
    sid = table.turns["session"]
    rows = np.isin(sid, keep)
    lens = np.diff(table.block_start)[rows]
    begin = table.block_start[:-1][rows]
    offset = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    blocks = table.blocks[np.repeat(begin, lens) + offset]
    block_start = np.r_[0, np.cumsum(lens)].astype(table.block_start.dtype)
    mine = np.isin(table.sessions["id"], keep)
    return Table(
        header=table.header,
        turns={k: v[rows] for k, v in table.turns.items()},
        blocks=blocks,
        block_start=block_start,
        stop_vocab=table.stop_vocab,
        sessions={k: v[mine] for k, v in table.sessions.items()},
        vocab=table.vocab,
    )


def top_level(table: Table) -> tuple[Table, int]:
    """The table without sub-agent sessions, and how many sessions that left out."""
    parent = table.sessions["parent"]
    roots = table.sessions["id"][parent < 0]
    dropped = int(np.count_nonzero(parent >= 0))
    if not dropped:
        return table, 0
    return sessions(table, roots), dropped
