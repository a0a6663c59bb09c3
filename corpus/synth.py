"""Synthetic sessions from a fitted model of a corpus's sessions, or of the coding reference.

A `Model` says how a session unfolds, each part an empirical distribution (`Dist`, quantile
knots sampled by inverse CDF):
- turns per session; the first request's input; shared prefixes (a few prompt families: the
  system prompt and tool schemas sessions have in common, by share of sessions);
- each later turn keeps the previous request's prefix (all its full blocks with probability
  `extend`, else a `kept` share of it, as compaction or edits do), then adds `new` tokens;
  a context beyond `max_input` is compacted to its shared prefix;
- output tokens per turn; waits after tools and after the user (`user_share` of later turns);
- sub-agents per top-level session, each a session of the `sub` model, launched after a
  random turn of its parent; sessions start `gap` seconds apart on average (exponential).

`fit(path)` fits every part from a corpus (provider-reported input counts where the local
count is off, as `corpus.counts` decides). `coding()` is the reference coding workload: AA's
own public recordings (the bundled `agentperf-local` corpus) fitted, with every figure
AA-AgentPerf publishes taking precedence (`CODING_NOTES` says where they disagree).
`generate` writes `n` top-level sessions, seeded; the header says it is synthetic.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist

import numpy as np

from corpus.counts import counts
from corpus.errors import CorpusError
from corpus.reader import Reader
from corpus.records import DEFAULT_BLOCK_SIZE, After, Header, Session, Turn
from corpus.writer import Writer

# Quantile levels of a fitted distribution: dense in the tails, where heavy-tailed token
# counts and waits put the work.
LEVELS: tuple[float, ...] = (
    0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6,
    0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0,
)  # fmt: skip
MAX_TURNS = 200  # AA-AgentPerf's longest trajectories
FAMILIES = 8  # shared-prefix families kept by a fit (the rest count as unshared)
SPEED = 50.0  # tok/s, TTFT_S: the nominal service time that spaces synthetic turns' `t`
TTFT_S = 0.5


@dataclass(frozen=True)
class Dist:
    """An empirical distribution: values at the quantile levels `LEVELS`. Sampling interpolates
    between knots in log(1 + x), so heavy tails stay heavy."""

    knots: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.knots) != len(LEVELS):
            raise ValueError(f"a Dist needs {len(LEVELS)} knots, got {len(self.knots)}")

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Dist:
        """The distribution of `values` (finite, ≥ 0); a single 0 when there are none."""
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v) & (v >= 0)]
        if not v.size:
            return cls.constant(0.0)
        return cls(tuple(float(x) for x in np.quantile(v, LEVELS)))

    @classmethod
    def constant(cls, x: float) -> Dist:
        return cls((float(x),) * len(LEVELS))

    @classmethod
    def lognormal(cls, median: float, p95: float, lo: float, hi: float) -> Dist:
        """Log-normal through `median` and `p95`, clipped to [lo, hi]."""
        sigma = math.log(p95 / median) / NormalDist().inv_cdf(0.95)
        z = [NormalDist().inv_cdf(min(max(q, 1e-4), 1 - 1e-4)) for q in LEVELS]
        return cls(tuple(min(max(median * math.exp(sigma * x), lo), hi) for x in z))

    @classmethod
    def log_uniform(cls, lo: float, median: float, hi: float) -> Dist:
        """Log-uniform from `lo` to `median` (lower half) and from `median` to `hi`."""
        out = []
        for q in LEVELS:
            a, b, f = (lo, median, q / 0.5) if q <= 0.5 else (median, hi, (q - 0.5) / 0.5)
            out.append(math.exp(math.log(a) + f * (math.log(b) - math.log(a))))
        return cls(tuple(out))

    def sample(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        u = rng.random(1 if n is None else n)
        return np.expm1(np.interp(u, LEVELS, np.log1p(self.knots)))

    def draw(self, rng: np.random.Generator) -> float:
        return float(self.sample(rng)[0])

    @property
    def median(self) -> float:
        return self.knots[LEVELS.index(0.5)]

    def scaled(self, k: float) -> Dist:
        return Dist(tuple(x * k for x in self.knots))


@dataclass(frozen=True)
class Model:
    """How synthetic sessions unfold (see the module docstring). Tokens, seconds."""

    source: str
    domain: str = "unknown"
    block_size: int = DEFAULT_BLOCK_SIZE
    turns: Dist = field(default_factory=lambda: Dist.constant(1))
    first_input: Dist = field(default_factory=lambda: Dist.constant(1000))
    families: tuple[tuple[float, tuple[int, ...]], ...] = ()
    """Shared prefixes: (share of sessions, the depths in blocks its sessions share)."""
    extend: float = 1.0
    kept: Dist = field(default_factory=lambda: Dist.constant(1.0))
    new: Dist = field(default_factory=lambda: Dist.constant(500))
    output: Dist = field(default_factory=lambda: Dist.constant(150))
    tool_wait: Dist = field(default_factory=lambda: Dist.constant(1.0))
    user_wait: Dist = field(default_factory=lambda: Dist.constant(0.0))
    user_share: float = 0.0
    max_input: int = 131_072
    subagents: Dist = field(default_factory=lambda: Dist.constant(0))
    sub: Model | None = None
    gap: float = 0.0
    model: str = ""
    api: str = ""
    agent: str = ""
    license: str = ""  # the source corpus's licence, which a fitted model carries on
    notes: tuple[str, ...] = ()

    def with_(self, **changes: object) -> Model:
        """A copy with some parts replaced (e.g. one feature taken from another model)."""
        return replace(self, **changes)  # type: ignore[arg-type]


# -- fitting ------------------------------------------------------------------------------------


def _families(firsts: list[list[int]]) -> tuple[tuple[float, tuple[int, ...]], ...]:
    """Shared-prefix families of first requests: sessions grouped by their first block, each
    group with the depths (leading blocks) its sessions share with another session's first
    request. Ids are prefix-chained, so a shared id means a shared prefix up to it, and the
    sessions of one group share a chain of blocks to different depths."""
    seen: dict[int, int] = {}
    for blocks in firsts:
        for b in set(blocks):
            seen[b] = seen.get(b, 0) + 1
    groups: dict[int, list[int]] = {}
    for blocks in firsts:
        depth = 0
        while depth < len(blocks) and seen[blocks[depth]] > 1:
            depth += 1
        if depth:
            groups.setdefault(blocks[0], []).append(depth)
    total = len(firsts) or 1
    top = sorted(groups.values(), key=len, reverse=True)[:FAMILIES]
    return tuple((len(d) / total, tuple(sorted(d))) for d in top)


def _fit_sessions(sessions: list[Session], block_size: int, source: str) -> Model:
    inp = np.array([t.input for s in sessions for t in s.turns], dtype=np.int64)
    usage = np.array(
        [-1 if t.usage_input is None else t.usage_input for s in sessions for t in s.turns],
        dtype=np.int64,
    )
    reuse = np.array([t.reuse for s in sessions for t in s.turns], dtype=np.int64)
    first = np.array([k == 0 for s in sessions for k in range(len(s.turns))], dtype=bool)
    reused = np.where(first, 0, np.minimum(inp, reuse * block_size))
    c = counts(inp, reused, usage, first)
    # Structure (does a turn keep all the previous request's full blocks?) on local counts,
    # the blocks' own; sizes on the chosen counts.
    prev = np.r_[0, inp[:-1]]
    later = ~first
    extends = later & (reuse >= prev // block_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = np.where(prev > 0, reused / np.maximum(prev, 1), 0.0)
    waits = [(t.after, t.wait) for s in sessions for t in s.turns[1:]]
    timed = any(t.wait > 0 or t.t > 0 for s in sessions for t in s.turns)
    tool = [w for a, w in waits if a == "tool"]
    user = [w for a, w in waits if a == "user"]
    starts = sorted(s.start for s in sessions)
    gaps = np.diff(starts) if len(starts) > 1 else np.zeros(0)
    notes = [f"fitted from {source}: {len(sessions)} sessions, {int(inp.size)} turns"]
    if c.basis == "provider":
        notes.append(f"input from the provider's counts ({c.ratio:.2f}× the local count)")
    if not timed:
        notes.append("the source has no timings: waits are 0")
    return Model(
        source=source,
        block_size=block_size,
        turns=Dist.of([len(s.turns) for s in sessions]),
        first_input=Dist.of(c.input[first]),
        families=_families([s.prefixes()[0] for s in sessions]),
        extend=float(extends[later].mean()) if later.any() else 1.0,
        kept=Dist.of(kept[later & ~extends]),
        new=Dist.of(c.new[later]),
        output=Dist.of([t.output for s in sessions for t in s.turns]),
        tool_wait=Dist.of(tool),
        user_wait=Dist.of(user),
        user_share=len(user) / len(waits) if waits else 0.0,
        max_input=int(c.input.max()) if inp.size else 131_072,
        gap=float(gaps.mean()) if gaps.size else 0.0,
        model=_common([s.model for s in sessions]),
        api=_common([s.api for s in sessions]),
        agent=_common([s.agent for s in sessions]),
        notes=tuple(notes),
    )


def _common(values: list[str]) -> str:
    """The most common value (ties: the first seen)."""
    count: dict[str, int] = {}
    for v in values:
        count[v] = count.get(v, 0) + 1
    return max(count, key=lambda k: count[k], default="")


def fit(path: str | os.PathLike[str]) -> Model:
    """The model of the corpus at `path`: top-level sessions for the session parts, sub-agent
    sessions (when there are at least 3) for `sub`."""
    reader = Reader(path)
    sessions = [s for s in reader.sessions() if s.turns]
    if not sessions:
        raise CorpusError(f"{os.fspath(path)}: no sessions with turns to fit a model to")
    bs = reader.header.block_size
    top = [s for s in sessions if s.parent is None]
    subs = [s for s in sessions if s.parent is not None]
    name = Path(path).name
    model = _fit_sessions(top or sessions, bs, name)
    ids = {s.id for s in sessions}
    kids: dict[int, int] = {}
    for s in subs:
        if s.parent in ids:
            kids[s.parent] = kids.get(s.parent, 0) + 1
    sub = _fit_sessions(subs, bs, f"{name} (sub-agents)") if len(subs) >= 3 else None
    return model.with_(
        domain=reader.header.domain,
        license=reader.header.license,
        subagents=Dist.of([kids.get(s.id, 0) for s in top]) if sub else Dist.constant(0),
        sub=sub,
    )


# -- the coding reference -----------------------------------------------------------------------

# AA-AgentPerf's published figures of its coding trajectories (stats/reference.py quotes them).
PUBLISHED_OUTPUT = Dist.lognormal(150, 2_000, 1, 32_768)
PUBLISHED_TOOL_WAIT = Dist.log_uniform(0.1, 1.0, 5.0)
PUBLISHED_MAX_INPUT = 131_072
# Turns per session. AA publishes only "up to 200"; its recordings hold 8–37. A log-normal with
# median 14 and p95 70, clipped to 1–200, is what makes inputs average ≈ 27K per turn (≈ 97 %
# within 5K–131K) with the recordings' context growth, reach 200 turns, and send some sessions
# beyond 100K tokens, as published (tests/corpus/test_synth.py checks each published figure).
CODING_TURNS = Dist.lognormal(14, 70, 1, MAX_TURNS)

CODING_NOTES: tuple[str, ...] = (
    "reference coding workload: AA's public agentperf-local recordings (8 sessions, 168 turns) "
    "fitted for what AA does not publish (first request and shared system prompt, new tokens "
    "per turn, kept context), with AA-AgentPerf's published figures where they exist",
    "they disagree on: tool waits (published 0.1–5 s, median ≈ 1 s, simulated; recorded median "
    "0.12 s): the reference takes the published waits, which AgentPerf replays",
    "output (published median ≈ 150, p95 ≈ 2K; recorded 73 and ≈ 400): the reference takes "
    "the published figures",
    "input per turn (published mean ≈ 27K, 5K–131K, sequences > 100K, up to 200 turns; "
    "recorded mean 13K, at most 37 turns and 51K): the reference draws turns per session "
    "(median 14, p95 70, up to 200) with the recorded growth, so inputs meet the published "
    "figures",
)


def coding(recorded_path: str | os.PathLike[str] | None = None) -> Model:
    """The reference coding workload (module docstring; `CODING_NOTES` says what it takes),
    fitted to the bundled `agentperf-local` corpus or to the one at `recorded_path`."""
    if recorded_path is None:
        from corpus import reference  # the bundled corpora, absent from some installations

        recorded_path = reference.path("agentperf-local")
    recorded = fit(recorded_path)
    return recorded.with_(
        source="coding",
        domain="coding",
        turns=CODING_TURNS,
        output=PUBLISHED_OUTPUT,
        tool_wait=PUBLISHED_TOOL_WAIT,
        user_share=0.0,
        max_input=PUBLISHED_MAX_INPUT,
        model="",
        agent="",
        notes=CODING_NOTES,
    )


def like(source: str | os.PathLike[str]) -> Model:
    """`coding` (the reference) or the model fitted to the corpus at `source`."""
    if os.fspath(source) == "coding":
        return coding()
    if not Path(source).is_file():
        raise CorpusError(
            f"{os.fspath(source)}: no such corpus; use --like coding or a corpus path"
        )
    return fit(source)


# -- generating ---------------------------------------------------------------------------------


@dataclass
class _Ids:
    """Block ids: fixed ones per shared-prefix family, fresh ones for everything else."""

    next: int = 0
    family: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def fresh(self, n: int) -> list[int]:
        out = list(range(self.next, self.next + n))
        self.next += n
        return out

    def shared(self, index: int, depth: int, level: int) -> list[int]:
        key = (level, index)
        if key not in self.family:
            self.family[key] = self.fresh(depth)
        return self.family[key]


@dataclass(frozen=True)
class Planned:
    """One generated session: its turns, full block lists and sub-agents (launched after the
    parent's turn `anchor`)."""

    turns: list[Turn]
    blocks: list[list[int]]
    children: list[tuple[int, Planned]]


def _blocks(tokens: int, bs: int) -> int:
    return -(-tokens // bs)


def _session(m: Model, rng: np.random.Generator, ids: _Ids, level: int = 0) -> Planned:
    bs = m.block_size
    n = max(1, min(MAX_TURNS, round(m.turns.draw(rng))))
    shared: list[int] = []
    if m.families:
        shares = [w for w, _ in m.families]
        weights = np.array([*shares, max(0.0, 1 - sum(shares))])
        pick = int(rng.choice(weights.size, p=weights / weights.sum()))
        if pick < len(m.families):
            depths = m.families[pick][1]
            chain = ids.shared(pick, max(depths), level)
            shared = chain[: depths[int(rng.integers(0, len(depths)))]]
    floor = len(shared) * bs
    turns: list[Turn] = []
    lists: list[list[int]] = []
    t = 0.0
    prev_in, prev_out, prev_blocks = 0, 0, shared
    for k in range(n):
        after: After
        if k == 0:
            size = max(round(m.first_input.draw(rng)), floor + 1)
            keep = len(shared)
            wait, after = 0.0, "start"
        else:
            full = prev_in // bs
            if rng.random() < m.extend:
                keep = full
            else:
                keep = min(full, int(m.kept.draw(rng) * prev_in) // bs)
            keep = max(keep, len(shared))
            size = keep * bs + max(1, round(m.new.draw(rng)))
            if size > m.max_input:  # compaction: the shared prefix and this turn's new part
                keep = len(shared)
                size = min(m.max_input, floor + max(1, round(m.new.draw(rng))))
            if rng.random() < m.user_share:
                wait, after = float(m.user_wait.draw(rng)), "user"
            else:
                wait, after = float(m.tool_wait.draw(rng)), "tool"
            t += TTFT_S + prev_out / SPEED + wait
        blocks = prev_blocks[:keep] + ids.fresh(_blocks(size, bs) - keep)
        out = max(1, round(m.output.draw(rng)))
        turns.append(Turn(t=round(t, 6), input=size, output=out, wait=round(wait, 6), after=after))
        lists.append(blocks)
        prev_in, prev_out, prev_blocks = size, out, blocks
    children: list[tuple[int, Planned]] = []
    if level == 0 and m.sub is not None:
        for _ in range(round(m.subagents.draw(rng))):
            anchor = int(rng.integers(0, n))
            children.append((anchor, _session(m.sub, rng, ids, level + 1)))
    return Planned(turns, lists, children)


def plan(model: Model, n: int, seed: int) -> Iterator[tuple[float, Planned]]:
    """`n` top-level sessions of `model` with their start times, seeded."""
    rng = np.random.default_rng(seed)
    ids = _Ids()
    start = 0.0
    for i in range(n):
        if i and model.gap > 0:
            start += float(rng.exponential(model.gap))
        yield start, _session(model, rng, ids)


def header(model: Model, n: int, seed: int) -> Header:
    """The header of a generated corpus: labelled synthetic, with how it was made."""
    notes = [
        f"SYNTHETIC: corpus synth --like {model.source} -n {n} --seed {seed}; every session is "
        "generated from a fitted model, none was recorded",
        *model.notes,
    ]
    return Header(
        domain=model.domain,
        block_size=model.block_size,
        source=f"synth:{model.source}",
        license=model.license,
        notes="; ".join(notes),
    )


@dataclass(frozen=True)
class Generated:
    sessions: int  # top-level
    subagents: int
    turns: int


def generate(model: Model, out: str | os.PathLike[str], *, n: int, seed: int) -> Generated:
    """Write `n` top-level sessions of `model` (and their sub-agents) to a new corpus `out`
    (no keys sidecar: the ids name no content)."""
    if n < 1:
        raise CorpusError(f"need at least 1 session to generate, got {n}")
    sessions = subagents = turns = 0
    with Writer(out, header(model, n, seed), keys=False) as w:
        for start, p in plan(model, n, seed):
            sid = _write(w, model, p, start, None)
            sessions += 1
            turns += len(p.turns)
            for anchor, child in p.children:
                launch = start + p.turns[anchor].t + TTFT_S + p.turns[anchor].output / SPEED
                _write(w, model.sub or model, child, launch, sid)
                subagents += 1
                turns += len(child.turns)
    return Generated(sessions, subagents, turns)


def _write(w: Writer, m: Model, p: Planned, start: float, parent: int | None) -> int:
    sid = w.open_session(start=start, model=m.model, api=m.api, agent=m.agent, parent=parent)
    for turn, blocks in zip(p.turns, p.blocks, strict=True):
        w.add_turn(sid, turn, blocks)
    w.close_session(sid)
    return sid
