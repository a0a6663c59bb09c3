"""Columnar coding of turn batches: `Turn` objects <-> the on-disk `Turns` record <-> numpy.

A column that holds only its default value is stored empty. Block ids are delta-coded, so the
sequential ids of new content compress to almost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from corpus.records import AFTER, Turn, Turns

# name -> (dtype, default). Optional values use -1 for "not recorded". Times are stored as
# integer microseconds (exact and compact) and decoded to float seconds (NaN when missing).
COLUMNS: dict[str, tuple[str, int]] = {
    "session": ("<i4", 0),
    "t": ("<i8", 0),
    "input": ("<i4", 0),
    "output": ("<i4", 0),
    "reasoning": ("<i4", -1),
    "reuse": ("<i4", 0),
    "nblocks": ("<i4", 0),
    "wait": ("<i8", 0),
    "after": ("|u1", 0),
    "ntools": ("<u2", 0),
    "ttft": ("<i8", -1),
    "duration": ("<i8", -1),
    "usage_input": ("<i4", -1),
    "usage_cached": ("<i4", -1),
    "stop": ("<u2", 0),
    "status": ("<u2", 0),
}
TIMES = ("t", "wait", "ttft", "duration")
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


def _opt(value: int | None, missing: int) -> int:
    return missing if value is None else value


def _opt_us(value: float | None) -> int:
    return -1 if value is None else usec(value)


def encode(rows: Iterable[tuple[int, Turn]]) -> Turns:
    """One `Turns` record from (session id, turn) pairs, turns holding on-disk `reuse`/`blocks`."""
    vocab: dict[str, int] = {}

    def code(s: str) -> int:
        return vocab.setdefault(s, len(vocab))

    cols: dict[str, list[int]] = {name: [] for name in COLUMNS}
    blocks: list[int] = []
    tools: list[int] = []
    for sid, turn in rows:
        cols["session"].append(sid)
        cols["t"].append(usec(turn.t))
        cols["input"].append(turn.input)
        cols["output"].append(turn.output)
        cols["reasoning"].append(_opt(turn.reasoning, -1))
        cols["reuse"].append(turn.reuse)
        cols["nblocks"].append(len(turn.blocks))
        cols["wait"].append(usec(turn.wait))
        cols["after"].append(_AFTER_CODE.get(turn.after, 0))
        cols["ntools"].append(len(turn.tool_calls))
        cols["ttft"].append(_opt_us(turn.ttft))
        cols["duration"].append(_opt_us(turn.duration))
        cols["usage_input"].append(_opt(turn.usage_input, -1))
        cols["usage_cached"].append(_opt(turn.usage_cached, -1))
        cols["stop"].append(0 if turn.stop is None else code(turn.stop) + 1)
        cols["status"].append(_opt(turn.status, 0))
        blocks.extend(turn.blocks)
        tools.extend(code(name) for name in turn.tool_calls)
    n = len(cols["session"])
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


def _f(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _i(x: int) -> int | None:
    return None if x < 0 else int(x)


def turns(batch: Batch) -> list[tuple[int, Turn]]:
    """(session id, turn) pairs of a decoded batch, turns in on-disk form."""
    c = {name: arr.tolist() for name, arr in batch.columns.items()}
    blocks = batch.blocks.tolist()
    tools = [batch.vocab[i] for i in batch.tools.tolist()]
    out: list[tuple[int, Turn]] = []
    b = k = 0
    for i in range(batch.n):
        nb, nt = c["nblocks"][i], c["ntools"][i]
        stop = c["stop"][i]
        turn = Turn(
            t=c["t"][i],
            input=c["input"][i],
            output=c["output"][i],
            reasoning=_i(c["reasoning"][i]),
            reuse=c["reuse"][i],
            blocks=tuple(blocks[b : b + nb]),
            wait=c["wait"][i],
            after=AFTER[c["after"][i]] if c["after"][i] < len(AFTER) else "start",
            tool_calls=tuple(tools[k : k + nt]),
            ttft=_f(c["ttft"][i]),
            duration=_f(c["duration"][i]),
            usage_input=_i(c["usage_input"][i]),
            usage_cached=_i(c["usage_cached"][i]),
            stop=None if stop == 0 else batch.vocab[stop - 1],
            status=c["status"][i] or None,
        )
        out.append((c["session"][i], turn))
        b += nb
        k += nt
    return out
