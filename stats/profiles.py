"""Profiles: one corpus as numpy arrays (`Profile`) and as a JSON-ready description.

A description is one element of `corpora` in the "agentload.stats.describe/1" JSON document
that `stats describe --json` prints; stats/README.md documents every key. Keys are only ever
added.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from corpus import AFTER, CorpusError, Counts, Header, Reader, Table, counts
from stats import arrays as _arrays
from stats import cache as _cache
from stats import prefix as _prefix
from stats import select
from stats.distributions import summary
from stats.errors import StatsError

SCHEMA = "agentload.stats.describe/1"
GROWTH_TURNS = 200  # context growth is reported for turns 1..200 (AA-AgentPerf's maximum)

Source = str | os.PathLike[str] | Table


@dataclass(frozen=True)
class Profile:
    """Everything `describe` and `compare` compute about one corpus, as arrays."""

    name: str
    header: Header
    table: Table
    layout: _arrays.Layout
    turns: _arrays.TurnMetrics
    sessions: _arrays.SessionMetrics
    arrivals: _arrays.Arrivals
    hits: _cache.Hits
    lru: _cache.LRU
    counts: Counts | None = None  # which input counts the figures use (None: local, unchecked)
    split: bool = False  # block ids broke the prefix rule and were split by prefix
    damage: str | None = None
    left_out: int = 0  # sub-agent sessions left out (top_level)

    @property
    def prefix_hit_ratio(self) -> float:
        return self.hits.ratio


def read(path: str | os.PathLike[str], *, allow_damaged: bool = False) -> tuple[Table, str | None]:
    """The table of the corpus at `path` and, for a damaged file read with `allow_damaged`,
    what was lost. Without it a damaged file raises the message `corpus validate` gives."""
    try:
        reader = Reader(path, strict=not allow_damaged)
        table = reader.table()
    except FileNotFoundError as exc:
        raise StatsError(f"{os.fspath(path)}: no such file") from exc
    except CorpusError as exc:
        raise StatsError(str(exc)) from exc
    damage = None
    if reader.damage is not None:
        damage = reader.damage.message(reader.path, table.n_sessions)
    return table, damage


def _hits(hits: _cache.Hits, local: np.ndarray, c: Counts, first: np.ndarray) -> _cache.Hits:
    """Infinite-cache hits on the chosen counts: scaled with the tokenizer; with missing
    content, the missing prefix hits on every turn after a session's first."""
    if c.basis == "local":
        return hits
    if c.reason == "missing":
        per_turn = hits.per_turn + np.where(first, 0, np.maximum(c.input - local, 0))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            per_turn = hits.per_turn * np.where(local > 0, c.input / np.maximum(local, 1), 1.0)
    per_turn = np.minimum(per_turn, c.input)
    return _cache.Hits(per_turn, int(per_turn.sum()), int(c.input.sum()))


def profile(
    source: Source,
    *,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
    top_level: bool = False,
    allow_damaged: bool = False,
) -> Profile:
    """Compute the arrays of `source` (a corpus path or an already-read `corpus.Table`);
    `progress` is told each step as it starts; `top_level` leaves sub-agent sessions out.
    Token counts are the provider's where `corpus.counts` says the local ones are off."""
    step = progress or (lambda _msg: None)
    damage = None
    if isinstance(source, Table):
        table = source
        label = name or "table"
    else:
        step(f"reading {os.fspath(source)}")
        table, damage = read(source, allow_damaged=allow_damaged)
        label = name or os.fspath(source)
    if table.header.block_size < 1:
        raise StatsError(f"{label}: block_size {table.header.block_size} in the header; need ≥ 1")
    left_out = 0
    if top_level:
        table, left_out = select.top_level(table)
    step(f"{label}: per-turn and per-session metrics")
    lay = _arrays.layout(table)
    turns = _arrays.turn_metrics(table)
    local = turns.input
    basis = counts(local, turns.reused, table.turns["usage_input"], lay.prev < 0)
    if basis.basis == "provider":
        turns = _arrays.recount(turns, basis.input, basis.reused)
    sessions = _arrays.session_metrics(table, lay, turns)
    step(f"{label}: prefix tree of {table.blocks.size:,} new blocks")
    tree = _prefix.tree(table, lay)
    step(f"{label}: cache hit ratios over {table.n_turns:,} requests")
    return Profile(
        name=label,
        header=table.header,
        table=table,
        layout=lay,
        turns=turns,
        sessions=sessions,
        arrivals=_arrays.arrivals(sessions),
        hits=_hits(_cache.infinite(table, lay, tree), local, basis, lay.prev < 0),
        lru=_cache.lru(table, lay, tree),
        counts=basis,
        split=tree.split,
        damage=damage,
        left_out=left_out,
    )


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _stops(p: Profile) -> dict[str, int]:
    counts = np.bincount(p.turns.stop, minlength=len(p.table.stop_vocab) + 1)
    out = {"none": int(counts[0])} if counts[0] else {}
    for i, name in enumerate(p.table.stop_vocab):
        if counts[i + 1]:
            out[name] = int(counts[i + 1])
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _growth(p: Profile) -> list[dict[str, Any]]:
    counts, pct = _arrays.grouped_percentiles(
        p.turns.input.astype(np.float64), p.layout.turn_no, (10, 50, 90), GROWTH_TURNS
    )
    return [
        {
            "turn": k + 1,
            "n": int(counts[k]),
            "p10": _num(pct[k, 0]),
            "p50": _num(pct[k, 1]),
            "p90": _num(pct[k, 2]),
        }
        for k in range(GROWTH_TURNS)
        if counts[k]
    ]


def description(p: Profile, *, cache_tokens: int | None = None) -> dict[str, Any]:
    """The JSON-ready description of a profile (schema in stats/README.md)."""
    t, s, a = p.turns, p.sessions, p.arrivals
    h = p.header
    lru_at = None if cache_tokens is None else _num(p.lru.ratio(cache_tokens))
    conc = summary(a.samples)
    return {
        "file": p.name,
        "damage": p.damage,
        "header": {
            "domain": h.domain,
            "tokenizer": h.tokenizer,
            "block_size": h.block_size,
            "source": h.source,
            "created": h.created,
            "producer": h.producer,
        },
        "tokens": _tokens(p),
        "counts": {
            "sessions": int(s.turns.size),
            "subagent_sessions": int(np.count_nonzero(s.is_subagent)),
            "turns": int(t.input.size),
            "input_tokens": p.hits.input_tokens,
            "output_tokens": int(t.output.sum()),
        },
        "turn": {
            "input": summary(t.input),
            "output": summary(t.output),
            "new": summary(t.new),
            "reuse_ratio": summary(t.reuse_ratio),
            "wait": {name: summary(t.waits(name)) for name in AFTER},
            "ttft": summary(t.ttft),
            "speed": summary(t.speed),
            "stop": _stops(p),
        },
        "session": {
            "turns": summary(s.turns),
            "duration": summary(s.duration),
            "final_context": summary(s.final_context),
            "input": summary(s.input),
            "output": summary(s.output),
            "tokens": summary(s.tokens),
            "subagents": summary(s.subagents),
        },
        "prefix_hit_ratio": _num(p.hits.ratio),
        "lru": {
            "capacity_tokens": cache_tokens,
            "hit_ratio": lru_at,
            "saturation_tokens": p.lru.saturation_tokens,
            "curve": [{"capacity_tokens": c, "hit_ratio": _num(r)} for c, r in p.lru.curve()],
        },
        "arrivals": {
            "span": a.span,
            "inter_arrival": summary(a.gaps),
            "concurrency": {
                "max": a.concurrency_max,
                "mean": a.concurrency_mean,
                **{k: v for k, v in conc.items() if k.startswith("p")},
            },
        },
        "context_growth": _growth(p),
        "notes": notes(p),
    }


def _tokens(p: Profile) -> dict[str, Any]:
    """Which token counts the figures use (`corpus.counts`) and the tokenizer behind them."""
    c = p.counts
    return {
        "tokenizer": p.header.tokenizer,
        "basis": c.basis if c else "local",
        "reason": c.reason if c else "",
        "provider_ratio": _num(c.ratio) if c else None,
        "provider_covered": c.covered if c else 0.0,
        "note": c.sentence(p.header.tokenizer) if c else f"token counts: {p.header.tokenizer}",
    }


def notes(p: Profile) -> list[str]:
    """What a reader of this profile's figures should know."""
    out = [_tokens(p)["note"]]
    if p.counts is not None and p.counts.basis == "provider":
        out.append(
            "the prefix-cache hit ratio adds the provider's extra tokens to the recorded "
            "blocks; the LRU curve is over the recorded blocks only"
        )
    if p.left_out:
        out.append(f"top-level sessions only: {p.left_out} sub-agent sessions left out")
    return (
        out
        + (["block ids broke the prefix rule; blocks were split by prefix"] if p.split else [])
        + (
            ["no timings recorded (every t and wait is 0): waits are reported as missing"]
            if _arrays.untimed(p.table)
            else []
        )
    )


def describe(
    source: Source, *, cache_tokens: int | None = None, top_level: bool = False
) -> dict[str, Any]:
    """The description of one corpus (a path or a `corpus.Table`); `cache_tokens` also
    reports the LRU hit ratio of a cache that size; `top_level` leaves sub-agents out."""
    return description(profile(source, top_level=top_level), cache_tokens=cache_tokens)
