"""Columnar coding of turn batches: `Turn` objects <-> the on-disk `Turns` record <-> numpy.

A column that holds only its default value is stored empty. Block ids are delta-coded, so the
sequential ids of new content compress to almost nothing. The plain columns come from the
`Column` annotations of `Turn` (`corpus.records.PLAIN`); only the structural ones (session,
block and tool lists, `after`, `stop`) are coded by hand here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from corpus.records import AFTER, OPTIONAL, PLAIN, Turn, Turns

_STRUCTURAL: dict[str, tuple[str, int]] = {
    "session": ("<i4", 0),  # session id of each turn
    "nblocks": ("<i4", 0),  # how many new block ids each turn has in `blocks`
    "after": ("|u1", 0),  # index into AFTER
    "ntools": ("<u2", 0),  # how many tool calls each turn has in `tools`
    "stop": ("<u2", 0),  # 0 = none, else 1 + index into the batch's vocab
}
# name -> (dtype, default). Optional values use their column's `missing` value (-1, or 0 for
# status) for "not recorded". Times are stored as integer microseconds (exact and compact) and
# decoded to float seconds (NaN when missing).
COLUMNS: dict[str, tuple[str, int]] = {
    **_STRUCTURAL,
    **{name: (c.dtype, c.missing) for name, c in PLAIN.items()},
}
TIMES = tuple(name for name, c in PLAIN.items() if c.time)
_AFTER_CODE = {name: i for i, name in enumerate(AFTER)}


def usec(seconds: float) -> int:
    """`seconds` at the stored resolution (integer microseconds)."""
    return round(seconds * 1_000_000)


def quantize(seconds: float) -> float:
    """`seconds` as it reads back from a file."""
    return usec(seconds) / 1_000_000


def _pack(values: Sequence[int], dtype: str, default: int) -> bytes:
    arr = np.asarray(values, dtype=dtype)
    if (arr == default).all():
        return b""
    return arr.tobytes()


def _unpack(buf: bytes, n: int, dtype: str, default: int) -> np.ndarray:
    if not buf:
        return np.full(n, default, dtype=np.dtype(dtype).newbyteorder("="))
    arr = np.frombuffer(buf, dtype=dtype)
    if arr.shape[0] != n:
        raise ValueError(f"column holds {arr.shape[0]} values, batch says {n}")
    return arr.astype(np.dtype(dtype).newbyteorder("="), copy=False)


def _stored(name: str, values: list[Any]) -> list[int]:
    """The column values of plain field `name` (None -> missing, seconds -> microseconds)."""
    spec = PLAIN[name]
    if spec.time:
        if name in OPTIONAL:
            return [spec.missing if v is None else round(v * 1_000_000) for v in values]
        return [round(v * 1_000_000) for v in values]
    if name in OPTIONAL:
        return [spec.missing if v is None else v for v in values]
    return values


def encode(rows: Iterable[tuple[int, Turn]]) -> Turns:
    """One `Turns` record from (session id, turn) pairs, turns holding on-disk `reuse`/`blocks`."""
    vocab: dict[str, int] = {}

    def code(s: str) -> int:
        return vocab.setdefault(s, len(vocab))

    rows = list(rows)
    turns = [turn for _, turn in rows]
    stops: list[int] = []
    tools: list[int] = []
    for turn in turns:  # stop reasons and tool names share the vocab, in order of appearance
        stops.append(0 if turn.stop is None else code(turn.stop) + 1)
        tools.extend(code(name) for name in turn.tool_calls)
    cols: dict[str, list[int]] = {
        "session": [sid for sid, _ in rows],
        "nblocks": [len(turn.blocks) for turn in turns],
        "after": [_AFTER_CODE.get(turn.after, 0) for turn in turns],
        "ntools": [len(turn.tool_calls) for turn in turns],
        "stop": stops,
    }
    for name in PLAIN:
        cols[name] = _stored(name, [getattr(turn, name) for turn in turns])
    blocks = [b for turn in turns for b in turn.blocks]
    n = len(rows)
    packed = {name: _pack(cols[name], *COLUMNS[name]) for name in COLUMNS}
    ids = np.asarray(blocks, dtype="<i8")
    deltas = np.diff(ids, prepend=np.int64(0)) if ids.size else ids
    return Turns(
        n=n,
        blocks=deltas.astype("<i8").tobytes(),
        tools=np.asarray(tools, dtype="<u2").tobytes() if tools else b"",
        vocab=list(vocab),
        **packed,
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """Decoded columns of one `Turns` record (numpy arrays, native byte order). Time columns
    are float64 seconds, NaN where not recorded; optional counts are -1 where not recorded."""

    n: int
    columns: dict[str, np.ndarray]
    blocks: np.ndarray  # new block ids of all turns, concatenated (int64)
    tools: np.ndarray  # vocab index of every tool call, concatenated (uint16)
    vocab: list[str]


def decode(rec: Turns) -> Batch:
    """Columns of `rec`. Raises ValueError on inconsistent lengths."""
    n = rec.n
    if n < 0:
        raise ValueError(f"negative turn count {n}")
    columns = {name: _unpack(getattr(rec, name), n, *COLUMNS[name]) for name in COLUMNS}
    for name in TIMES:
        raw = columns[name]
        secs = raw / 1_000_000
        if COLUMNS[name][1] == -1:
            secs[raw < 0] = math.nan
        columns[name] = secs
    blocks = np.cumsum(np.frombuffer(rec.blocks, dtype="<i8")).astype(np.int64)
    if int(columns["nblocks"].sum()) != blocks.shape[0]:
        raise ValueError(
            f"block column holds {blocks.shape[0]} ids, turns claim {int(columns['nblocks'].sum())}"
        )
    tools = np.frombuffer(rec.tools, dtype="<u2").astype(np.uint16)
    if int(columns["ntools"].sum()) != tools.shape[0]:
        raise ValueError("tool column length does not match the per-turn tool counts")
    if tools.size and int(tools.max()) >= len(rec.vocab):
        raise ValueError("tool name index outside the batch vocabulary")
    stop = columns["stop"]
    if stop.size and int(stop.max()) > len(rec.vocab):
        raise ValueError("stop reason index outside the batch vocabulary")
    return Batch(n=n, columns=columns, blocks=blocks, tools=tools, vocab=list(rec.vocab))


def _values(name: str, arr: np.ndarray) -> list[Any]:
    """Plain field `name` of every turn as `Turn` holds it (None where not recorded)."""
    values: list[Any] = arr.tolist()
    if name not in OPTIONAL:
        return values
    if PLAIN[name].time:
        return [None if math.isnan(v) else v for v in values]
    missing = PLAIN[name].missing
    if missing < 0:  # anything negative is "not recorded" (a writer stores only ≥ 0)
        return [None if v < 0 else v for v in values]
    return [None if v == missing else v for v in values]


# Turn(blocks=…, after=…, tool_calls=…, stop=…, <every plain field>=…) with the plain fields
# passed positionally: built once from PLAIN (as dataclasses builds __init__), since a dict of
# keyword arguments per turn would cost a third more time on every read.
_make_turn = eval(  # noqa: S307 - source built from field names only
    f"lambda blocks, after, tool_calls, stop, {', '.join(PLAIN)}: Turn(blocks=blocks, "
    f"after=after, tool_calls=tool_calls, stop=stop, {', '.join(f'{n}={n}' for n in PLAIN)})",
    {"Turn": Turn},
)


def turns(batch: Batch) -> list[tuple[int, Turn]]:
    """(session id, turn) pairs of a decoded batch, turns in on-disk form."""
    c = {name: arr.tolist() for name, arr in batch.columns.items() if name in _STRUCTURAL}
    rows = zip(*(_values(name, batch.columns[name]) for name in PLAIN), strict=True)
    blocks = batch.blocks.tolist()
    tools = [batch.vocab[i] for i in batch.tools.tolist()]
    out: list[tuple[int, Turn]] = []
    b = k = 0
    for i, row in enumerate(rows):
        nb, nt = c["nblocks"][i], c["ntools"][i]
        stop = c["stop"][i]
        turn = _make_turn(
            tuple(blocks[b : b + nb]),
            AFTER[c["after"][i]] if c["after"][i] < len(AFTER) else "start",
            tuple(tools[k : k + nt]),
            None if stop == 0 else batch.vocab[stop - 1],
            *row,
        )
        out.append((c["session"][i], turn))
        b += nb
        k += nt
    return out
