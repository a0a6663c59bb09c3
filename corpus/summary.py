"""What a corpus holds, in one columnar pass (`corpus info`): header, counts, time span, mix."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from corpus.reader import Reader


@dataclass
class Info:
    """Summary of one corpus file. `models`/`apis`/`agents`/`domains` count sessions by value
    ("" = not recorded); `time_span` runs from the first session's start to the last request
    (plus its duration when observed), in seconds; `damage` describes a damaged tail."""

    file: str
    bytes: int
    version: int
    domain: str
    tokenizer: str
    block_size: int
    created: str
    producer: str
    source: str
    license: str
    notes: str
    sessions: int
    turns: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    sub_agents: int
    unclosed_sessions: int
    distinct_blocks: int
    time_span: float
    models: dict[str, int] = field(default_factory=dict)
    apis: dict[str, int] = field(default_factory=dict)
    agents: dict[str, int] = field(default_factory=dict)
    domains: dict[str, int] = field(default_factory=dict)
    damage: str | None = None
    unknown: dict[str, int] = field(default_factory=dict)  # skipped records of unknown kinds
    note: str | None = None  # what `unknown` means

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _counts(codes: np.ndarray, vocab: list[str]) -> dict[str, int]:
    counter = Counter(vocab[i] for i in codes.tolist())
    return dict(counter.most_common())


def info(path: str | os.PathLike[str], *, allow_damaged: bool = False) -> Info:
    """Summary of the corpus at `path`. A damaged file raises the `DamagedError` that
    `validate` reports, unless `allow_damaged`: then it sums up the intact frames."""
    reader = Reader(path, strict=not allow_damaged)
    table = reader.table()
    h = table.header
    turns, sessions = table.turns, table.sessions
    reasoning = turns["reasoning"]
    return Info(
        file=os.fspath(path),
        bytes=os.path.getsize(path),
        version=h.version,
        domain=h.domain,
        tokenizer=h.tokenizer,
        block_size=h.block_size,
        created=h.created,
        producer=h.producer,
        source=h.source,
        license=h.license,
        notes=h.notes,
        sessions=table.n_sessions,
        turns=table.n_turns,
        input_tokens=int(turns["input"].sum(dtype=np.int64)),
        output_tokens=int(turns["output"].sum(dtype=np.int64)),
        reasoning_tokens=int(reasoning[reasoning > 0].sum(dtype=np.int64)),
        sub_agents=int((sessions["parent"] >= 0).sum()),
        unclosed_sessions=int((~sessions["closed"]).sum()),
        distinct_blocks=_distinct(table.blocks),
        time_span=_span(table.turns, sessions),
        models=_counts(sessions["model"], table.vocab),
        apis=_counts(sessions["api"], table.vocab),
        agents=_counts(sessions["agent"], table.vocab),
        domains=_counts(sessions["domain"], table.vocab),
        damage=reader.damage.message(reader.path) if reader.damage else None,
        unknown=dict(reader.unknown),
        note=reader.unknown_note(),
    )


def _distinct(ids: np.ndarray) -> int:
    """How many different values `ids` holds. Block ids are compact first-seen ranks, so a
    presence mask is usually the fastest way (np.unique can be far slower on such runs)."""
    if not ids.size:
        return 0
    low, high = int(ids.min()), int(ids.max())
    if low >= 0 and high < 8 * ids.size + 1024:
        seen = np.zeros(high + 1, dtype=bool)
        seen[ids] = True
        return int(np.count_nonzero(seen))
    ordered = np.sort(ids)
    return 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1]))


def _span(turns: dict[str, np.ndarray], sessions: dict[str, np.ndarray]) -> float:
    ids, starts = sessions["id"], sessions["start"]
    if not ids.size:
        return 0.0
    sid = turns["session"]
    pos = np.minimum(np.searchsorted(ids, sid), ids.size - 1)
    known = ids[pos] == sid
    ends = starts[pos[known]] + turns["t"][known] + np.nan_to_num(turns["duration"][known])
    first = float(starts.min())
    last = float(max(starts.max(), ends.max() if ends.size else first))
    return last - first
