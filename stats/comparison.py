"""`compare`: a corpus beside a reference, metric by metric, with verdicts and what they mean.

Every compared figure carries a 90 % interval from resampling sessions (`stats.bootstrap`), and
verdicts (`match` < `differs` < `far`; thresholds in `THRESHOLDS`) judge only what the sample
can tell:
- a ratio (yours / reference, of medians; or yours / a published figure): `match` within
  1/1.5–1.5×, `far` only when the whole interval lies beyond 3× either way, else `differs`.
  The KS distance is reported as the difference in shape; beyond 0.40 it turns a `match`
  into `differs`, never into `far` (turns of a session are not independent draws, so KS over
  thousands of turns flags trivial differences).
- a published range by the share of your values inside it (match from 80 %, far when the
  share's interval stays below 50 %); a published floor ("sequences beyond 100K") by your
  maximum: `match` from half the floor on, else `differs` (a maximum depends on
  the sample size: 30 sessions drawn like AA's rarely reach 100K, so never `far`).
- the prefix hit ratio, a difference in points: `match` within 5 points, `far` when its
  interval stays beyond 15 points.
Where a reference has both a corpus and published figures, a metric takes the worse of the two.
With fewer than `min_sessions` sessions (yours, or a reference corpus without published
figures) a verdict is `too-few` ("too few sessions to judge").
Overall: `far` when any key metric (input, output, new tokens, tool waits, prefix hit ratio)
is far; `match` when every key metric matches and no metric is far; else `differs`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from corpus import AFTER, Table, synth
from stats.bootstrap import Resampler, interval
from stats.capacity import HALVES, Answer, Forecaster, workload_factor
from stats.checklist import Facility, checklist
from stats.distributions import finite, ks, share_within, summary
from stats.errors import StatsError
from stats.profiles import Profile, Source, notes, profile
from stats.reference import Figure, Reference, resolve

SCHEMA = "agentload.stats.compare/1"
VERDICTS = ("match", "differs", "far")
TOO_FEW = "too-few"
TOO_FEW_TEXT = "too few sessions to judge"
MIN_SESSIONS = 20
THRESHOLDS: dict[str, float] = {
    "ks_match": 0.15,
    "ks_far": 0.40,
    "ratio_match": 1.5,
    "ratio_far": 3.0,
    "range_match": 0.80,
    "range_far": 0.50,
    "points_match": 0.05,
    "points_far": 0.15,
    "min_sessions": MIN_SESSIONS,
}


Values = tuple[np.ndarray, np.ndarray]  # values, and the session (layout index) of each


def _per_turn(p: Profile, values: np.ndarray) -> Values:
    return values, p.layout.session


def _waits(p: Profile, after: str) -> Values:
    mask = p.turns.after == AFTER.index(after)
    return p.turns.wait[mask], p.layout.session[mask]


def _per_session(p: Profile, values: np.ndarray) -> Values:
    has = np.bincount(p.layout.session, minlength=p.layout.session_id.size) > 0
    return values, np.flatnonzero(has)


@dataclass(frozen=True)
class Metric:
    """A compared distribution: how to get its values (and their sessions) from a profile."""

    name: str
    label: str
    unit: str
    per: str  # turn | session
    key: bool
    get: Callable[[Profile], Values]

    def values(self, p: Profile) -> np.ndarray:
        return self.get(p)[0]


METRICS: tuple[Metric, ...] = (
    Metric(
        "input",
        "input tokens per turn",
        "tokens",
        "turn",
        True,
        lambda p: _per_turn(p, p.turns.input),
    ),
    Metric(
        "output",
        "output tokens per turn",
        "tokens",
        "turn",
        True,
        lambda p: _per_turn(p, p.turns.output),
    ),
    Metric(
        "new", "new tokens per turn", "tokens", "turn", True, lambda p: _per_turn(p, p.turns.new)
    ),
    Metric(
        "reuse_ratio",
        "reused share of input",
        "ratio",
        "turn",
        False,
        lambda p: _per_turn(p, p.turns.reuse_ratio),
    ),
    Metric("tool_wait", "wait after tool calls", "s", "turn", True, lambda p: _waits(p, "tool")),
    Metric("user_wait", "wait for the user", "s", "turn", False, lambda p: _waits(p, "user")),
    Metric(
        "turns",
        "turns per session",
        "turns",
        "session",
        False,
        lambda p: _per_session(p, p.sessions.turns),
    ),
    Metric(
        "final_context",
        "final context per session",
        "tokens",
        "session",
        False,
        lambda p: _per_session(p, p.sessions.final_context),
    ),
    Metric(
        "session_tokens",
        "tokens per session",
        "tokens",
        "session",
        False,
        lambda p: _per_session(p, p.sessions.tokens),
    ),
)
KEY = tuple(m.name for m in METRICS if m.key) + ("prefix_hit_ratio",)


def worst(verdicts: list[str]) -> str:
    """The worst of `verdicts`, `too-few` ignored (`match` for none; `too-few` when every
    verdict is `too-few`)."""
    judged = [v for v in verdicts if v != TOO_FEW]
    if verdicts and not judged:
        return TOO_FEW
    return max(judged, key=VERDICTS.index, default="match")


def ratio_verdict(ratio: float, lo: float | None = None, hi: float | None = None) -> str:
    """Verdict of a ratio of two positive values (symmetric: 2× and ½× are alike), judged on
    its interval [lo, hi] when given (module docstring)."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "far"
    a = min(lo, ratio) if lo is not None and math.isfinite(lo) and lo > 0 else ratio
    b = max(hi, ratio) if hi is not None and math.isfinite(hi) and hi > 0 else ratio
    m, f = THRESHOLDS["ratio_match"], THRESHOLDS["ratio_far"]
    if a > f or b < 1 / f:
        return "far"
    if 1 / m <= ratio <= m:
        return "match"
    return "differs"


def ks_verdict(d: float) -> str:
    if d <= THRESHOLDS["ks_match"]:
        return "match"
    return "far" if d > THRESHOLDS["ks_far"] else "differs"


def points_verdict(diff: float, lo: float | None = None, hi: float | None = None) -> str:
    """Verdict of a difference of two shares, judged on its interval when given."""
    a = min(lo, diff) if lo is not None and math.isfinite(lo) else diff
    b = max(hi, diff) if hi is not None and math.isfinite(hi) else diff
    m, f = THRESHOLDS["points_match"], THRESHOLDS["points_far"]
    if a > f or b < -f:
        return "far"
    if abs(diff) <= m:
        return "match"
    return "differs"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (a > 0 and b > 0):
        return None
    return a / b


def _pair(x: tuple[float, float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in x]


@dataclass(frozen=True)
class Side:
    """One corpus's values of a metric, with what resampling needs."""

    values: np.ndarray
    session: np.ndarray
    resampler: Resampler

    def reps(self, stat: str) -> np.ndarray:
        return self.resampler.replicates(self.values, self.session, stat)


def _ratio_interval(y: Side, r: Side, stat: str, point: float) -> tuple[float, float]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return interval(y.reps(stat) / r.reps(stat), point)


def distribution_check(y: Side, r: Side) -> dict[str, Any]:
    """KS distance and median/mean ratios (with intervals) of two samples, and the verdict."""
    ys, rs = summary(y.values), summary(r.values)
    d = ks(y.values, r.values)
    med = _ratio(ys["p50"], rs["p50"])
    mean = _ratio(ys["mean"], rs["mean"])
    med_iv = _ratio_interval(y, r, "p50", med) if med is not None else (math.nan, math.nan)
    mean_iv = _ratio_interval(y, r, "mean", mean) if mean is not None else (math.nan, math.nan)
    if med is not None:
        verdict = ratio_verdict(med, *med_iv)
    elif ys["p50"] == 0 and rs["p50"] == 0:
        verdict = "match" if mean is None else ratio_verdict(mean, *mean_iv)
    else:
        verdict = "far"  # one median is 0, the other is not
    if verdict == "match" and math.isfinite(d) and d > THRESHOLDS["ks_far"]:
        verdict = "differs"
    return {
        "ks": d,
        "median_ratio": med,
        "median_ratio_interval": _pair(med_iv) if med is not None else None,
        "mean_ratio": mean,
        "mean_ratio_interval": _pair(mean_iv) if mean is not None else None,
        "verdict": verdict,
    }


def published_check(y: Side, fig: Figure) -> dict[str, Any]:
    """Your values against one published figure: one entry per stated fact."""
    ys = summary(y.values)
    checks: list[dict[str, Any]] = []
    for key, stat in (("median", "p50"), ("mean", "mean"), ("p95", "p95")):
        want = getattr(fig, key)
        if want is None:
            continue
        got = ys[stat]
        r = _ratio(got, want)
        iv = interval(y.reps(stat) / want, r) if r is not None else (math.nan, math.nan)
        checks.append(
            {
                "check": key,
                "published": want,
                "yours": got,
                "ratio": r,
                "interval": _pair(iv) if r is not None else None,
                "verdict": ratio_verdict(r, *iv) if r is not None else "far",
            }
        )
    if fig.lo is not None and fig.hi is not None:
        share = share_within(y.values, fig.lo, fig.hi)
        inside = (y.values >= fig.lo) & (y.values <= fig.hi)
        ok = np.isfinite(y.values)
        lo, hi = interval(y.resampler.share(inside[ok], y.session[ok]), share)
        top = max(share, hi) if math.isfinite(hi) else share
        v = (
            "match"
            if share >= THRESHOLDS["range_match"]
            else "far"
            if top < THRESHOLDS["range_far"]
            else "differs"
        )
        checks.append(
            {
                "check": "range",
                "published": [fig.lo, fig.hi],
                "share_within": share,
                "interval": _pair((lo, hi)),
                "verdict": v,
            }
        )
    if fig.floor is not None:
        top_value = ys["max"]
        over = float(np.mean(finite(y.values) > fig.floor)) if ys["n"] else math.nan
        checks.append(
            {
                "check": "floor",
                "published": fig.floor,
                "yours_max": top_value,
                "share_above": over,
                "verdict": "match"
                if top_value is not None and top_value >= fig.floor / 2
                else "differs",
            }
        )
    return {"quote": fig.quote, "checks": checks, "verdict": worst([c["verdict"] for c in checks])}


def _summary_with_interval(side: Side) -> dict[str, Any]:
    out: dict[str, Any] = dict(summary(side.values))
    out["p50_interval"] = _pair(interval(side.reps("p50"), out["p50"]))
    out["mean_interval"] = _pair(interval(side.reps("mean"), out["mean"]))
    return out


@dataclass(frozen=True)
class Corpus:
    """A profile with its resampler and whether it has enough sessions to judge."""

    profile: Profile
    resampler: Resampler
    enough: bool

    @classmethod
    def of(cls, p: Profile, *, seed: int, min_sessions: int) -> Corpus:
        n = int(p.sessions.turns.size)
        return cls(p, Resampler(p.layout.session_id.size, seed=seed), n >= min_sessions)

    def side(self, m: Metric) -> Side:
        values, session = m.get(self.profile)
        return Side(np.asarray(values, dtype=np.float64), session, self.resampler)


def _metric(
    m: Metric, mine: Corpus, ref: Corpus | None, fig: Figure | None
) -> dict[str, Any] | str:
    """The comparison of one metric, or the reason it was skipped."""
    yours = mine.side(m)
    if not finite(yours.values).size:
        return "no values in your corpus"
    theirs = ref.side(m) if ref is not None else None
    if theirs is not None and not finite(theirs.values).size:
        theirs = None
    if theirs is None and fig is None:
        return "no values in the reference"
    out: dict[str, Any] = {
        "label": m.label,
        "unit": m.unit,
        "per": m.per,
        "key": m.key,
        "yours": _summary_with_interval(yours),
        "reference": _summary_with_interval(theirs) if theirs is not None else None,
        "ks": None,
        "median_ratio": None,
        "median_ratio_interval": None,
        "mean_ratio": None,
        "mean_ratio_interval": None,
        "published": None,
    }
    verdicts: list[str] = []
    if theirs is not None and ref is not None:
        dist = distribution_check(yours, theirs)
        v = dist.pop("verdict")
        out.update(dist)
        verdicts.append(v if ref.enough else TOO_FEW)
    if fig is not None:
        pub = published_check(yours, fig)
        out["published"] = pub
        verdicts.append(pub["verdict"])
    out["basis"] = (
        "both" if theirs is not None and fig is not None else "published" if fig else "corpus"
    )
    out["verdict"] = worst(verdicts) if mine.enough else TOO_FEW
    return out


def _hit_ratio(mine: Corpus, ref: Corpus | None) -> dict[str, Any] | str:
    p = mine.profile
    y = p.hits.ratio
    if math.isnan(y):
        return "no input tokens in your corpus"
    if ref is None or math.isnan(ref.profile.hits.ratio):
        return "no prefix hit ratio for the reference"
    q = ref.profile
    r = q.hits.ratio
    with np.errstate(invalid="ignore"):
        diffs = mine.resampler.ratio(
            p.hits.per_turn, p.turns.input, p.layout.session
        ) - ref.resampler.ratio(q.hits.per_turn, q.turns.input, q.layout.session)
    iv = interval(diffs, y - r)
    verdict = points_verdict(y - r, *iv)
    return {
        "label": "prefix-cache hit ratio (infinite cache)",
        "unit": "ratio",
        "per": "corpus",
        "key": True,
        "yours": y,
        "reference": r,
        "difference": y - r,
        "difference_interval": _pair(iv),
        "basis": "corpus",
        "verdict": verdict if mine.enough and ref.enough else TOO_FEW,
    }


def overall(metrics: dict[str, dict[str, Any]]) -> str:
    """The trace-match verdict over the compared metrics (see the module docstring)."""
    key = [m["verdict"] for name, m in metrics.items() if name in KEY]
    every = [m["verdict"] for m in metrics.values()]
    if every and all(v == TOO_FEW for v in every):
        return TOO_FEW
    key = [v for v in key if v != TOO_FEW] or [v for v in every if v != TOO_FEW]
    if "far" in key:
        return "far"
    if all(v == "match" for v in key) and "far" not in every:
        return "match"
    return "differs"


def _times(x: float) -> str:
    return f"{x:.1f}×" if x < 10 else f"{x:.0f}×"


WHERE = {"median": "at the median", "mean": "on average", "p95": "at p95"}

# metric -> (subject, word when yours is larger, word when smaller, consequence if larger,
# consequence if smaller)
PHRASES: dict[str, tuple[str, str, str, str, str]] = {
    "input": (
        "inputs",
        "longer",
        "shorter",
        "prefill-heavy, more KV memory per request: expect fewer agents per MW than "
        "AgentPerf reports",
        "less prefill and KV memory per request: AgentPerf's agents per MW likely "
        "understate what your agents would get",
    ),
    "new": (
        "new (not inherited) tokens per turn",
        "more",
        "fewer",
        "more prefill compute per turn even with a perfect prefix cache",
        "less prefill compute per turn",
    ),
    "output": (
        "outputs",
        "longer",
        "shorter",
        "decode-heavy: each agent holds decode capacity longer per turn; expect fewer "
        "agents per MW",
        "less decode per turn than AgentPerf's agents",
    ),
    "tool_wait": (
        "tool waits",
        "longer",
        "shorter",
        "agents idle longer between calls: each puts less load on the server, so "
        "more of them fit at the same speed than AgentPerf's waits suggest",
        "agents come back sooner: more load per agent, fewer agents at the same speed",
    ),
    "user_wait": (
        "user waits",
        "longer",
        "shorter",
        "open sessions sit idle longer: less load per open session",
        "users answer sooner: more load per open session",
    ),
    "turns": (
        "turns per session",
        "more",
        "fewer",
        "longer-lived agents whose contexts keep growing",
        "shorter-lived agents",
    ),
    "final_context": (
        "final contexts",
        "longer",
        "shorter",
        "more KV memory held per agent: fewer agents fit in the KV cache at once",
        "less KV memory held per agent",
    ),
    "session_tokens": (
        "tokens per session",
        "more",
        "fewer",
        "more work per agent session",
        "less work per agent session",
    ),
}


def _value(x: float, unit: str) -> str:
    if unit == "s":
        return f"{x:.2g} s"
    if unit == "ratio":
        return f"{x * 100:.0f} %"
    return f"{x:,.0f}" + (" tokens" if unit == "tokens" else "")


def _contrast(m: dict[str, Any]) -> tuple[float, float, str] | None:
    """(yours, reference, where) of the point statistic that differs most: a published one
    or the reference corpus's median."""
    cands: list[tuple[Any, Any, str]] = []
    for c in (m.get("published") or {}).get("checks", []):
        if c["check"] in WHERE:
            cands.append((c["yours"], c["published"], WHERE[c["check"]]))
    if m.get("reference"):
        cands.append((m["yours"]["p50"], m["reference"]["p50"], "at the median"))
    ok = [(y, r, w) for y, r, w in cands if y is not None and r is not None and y > 0 and r > 0]
    if not ok:
        return None
    return max(ok, key=lambda c: abs(math.log(c[0] / c[1])))


def _shape(name: str, m: dict[str, Any]) -> str | None:
    """What differs when the centers agree: published ranges and floors, or the KS distance."""
    subject = PHRASES[name][0] if name in PHRASES else m["label"]
    unit = m["unit"]
    for c in (m.get("published") or {}).get("checks", []):
        if c["verdict"] == "match":
            continue
        if c["check"] == "range":
            lo, hi = c["published"]
            return (
                f"only {c['share_within'] * 100:.0f} % of your {subject} fall within AA's "
                f"published {_value(lo, unit)}–{_value(hi, unit)}"
            )
        if c["check"] == "floor" and c["yours_max"] is not None:
            return (
                f"your longest {subject} reach {_value(c['yours_max'], unit)}; AA's "
                f"exceed {_value(c['published'], unit)}"
            )
    if m.get("ks") is not None and m["ks"] > THRESHOLDS["ks_match"]:
        return (
            f"{subject} are similar at the median but distributed differently "
            f"(KS distance {m['ks']:.2f})"
        )
    return None


def implications(metrics: dict[str, dict[str, Any]], reference: str) -> list[str]:
    """Plain-words consequences of the metrics that do not match, from their numbers only."""
    out: list[str] = []
    for name, m in metrics.items():
        if m["verdict"] == "match" or name in ("prefix_hit_ratio", "reuse_ratio"):
            continue
        got = _contrast(m)
        spread = max(got[0] / got[1], got[1] / got[0]) if got else 1.0
        if got is None or spread <= THRESHOLDS["ratio_match"] or name not in PHRASES:
            line = _shape(name, m)
            if line:
                out.append(line)
            continue
        y, r, where = got
        subject, up, down, more, less = PHRASES[name]
        k = y / r
        word, then = (up, more) if k > 1 else (down, less)
        out.append(
            f"{subject} {_times(max(k, 1 / k))} {word} {where} "
            f"({_value(y, m['unit'])} vs {_value(r, m['unit'])}) → {then}"
        )
    hit = metrics.get("prefix_hit_ratio")
    if hit and hit["verdict"] != "match":
        y, r = hit["yours"], hit["reference"]
        head = f"prefix reuse {y * 100:.0f} % vs {r * 100:.0f} % →"
        if y < r:
            tail = ""
            if r < 1:
                tail = f": {_times((1 - y) / (1 - r))} more input tokens to prefill per input token"
            out.append(f"{head} less KV reuse{tail}")
        elif 1 - y < 1e-3:
            out.append(f"{head} more KV reuse: almost no input left to prefill")
        else:
            out.append(
                f"{head} more KV reuse: {_times((1 - r) / (1 - y))} fewer input tokens "
                "to prefill per input token"
            )
    if not out:
        out.append(
            f"no metric differs from {reference}: capacity figures measured on it "
            "should carry over to this workload"
        )
    return out


def ranked(comp: dict[str, Any], answer: Answer | None) -> dict[str, Any]:
    """`comp` with the workload factor (`capacity`: null without one) and, when the factor has
    sensitivities, its metrics ranked by the effect of the feature behind them (each metric
    gets `effect`, agents/MW with the reference's feature ÷ with yours)."""
    comp["capacity"] = answer.json() if answer is not None else None
    if answer is None or not answer.effects:
        return comp
    effect: dict[str, float | None] = {}
    for e in answer.effects:
        for name in e.metrics:
            effect.setdefault(name, e.effect)
    effect.setdefault("prefix_hit_ratio", effect.get("reuse_ratio"))

    def weight(name: str) -> float:
        e = effect.get(name)
        return abs(math.log(e)) if e else -1.0

    order = sorted(comp["metrics"], key=lambda n: -weight(n))
    comp["metrics"] = {n: {**comp["metrics"][n], "effect": effect.get(n)} for n in order}
    return comp


def comparison(
    mine: Profile,
    ref: Reference,
    theirs: Profile | None,
    *,
    min_sessions: int = MIN_SESSIONS,
) -> dict[str, Any]:
    """The JSON-ready comparison of a profile with a resolved reference (no `capacity`; see
    `ranked`)."""
    me = Corpus.of(mine, seed=1, min_sessions=min_sessions)
    them = Corpus.of(theirs, seed=2, min_sessions=min_sessions) if theirs is not None else None
    metrics: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for m in METRICS:
        got = _metric(m, me, them, ref.published.get(m.name))
        if isinstance(got, str):
            skipped[m.name] = got
        else:
            metrics[m.name] = got
    hit = _hit_ratio(me, them)
    if isinstance(hit, str):
        skipped["prefix_hit_ratio"] = hit
    else:
        metrics["prefix_hit_ratio"] = hit
    if not metrics:
        raise StatsError(f"{mine.name}: no turns with input to compare with {ref.name}")
    sessions = int(mine.sessions.turns.size)
    return {
        "schema": SCHEMA,
        "file": mine.name,
        "sessions": sessions,
        "notes": notes(mine),
        "reference": {
            "name": ref.name,
            "corpus": ref.corpus,
            "sessions": int(theirs.sessions.turns.size) if theirs is not None else None,
            "published": (
                {"source": ref.source, "figures": {k: f.quote for k, f in ref.published.items()}}
                if ref.published
                else None
            ),
            "notes": list(ref.notes) + (notes(theirs) if theirs is not None else []),
        },
        "verdict": overall(metrics),
        "metrics": metrics,
        "skipped": skipped,
        "implications": implications(metrics, ref.name)
        if me.enough
        else [f"{TOO_FEW_TEXT}: {sessions} sessions, at least {min_sessions} needed"],
        "thresholds": {**THRESHOLDS, "min_sessions": min_sessions},
        "interval": "90 % interval from resampling sessions",
        "capacity": None,
    }


def factor_for(
    source: str | os.PathLike[str],
    ref: Reference,
    forecaster: Forecaster,
    *,
    halves: int = HALVES,
    why: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Answer:
    """The workload factor of the corpus at `source` against `ref` (which needs a corpus)."""
    if ref.corpus is None:
        raise StatsError(
            f"reference '{ref.name}' has no corpus to forecast; the workload factor needs one "
            "(use --reference coding or a corpus path, or --no-factor)"
        )
    model = synth.coding() if ref.name == "coding" else None
    return workload_factor(
        source,
        ref.corpus,
        forecaster,
        reference_model=model,
        reference_name=ref.name,
        halves=halves,
        why=why,
        progress=progress,
    )


def compare(
    source: Source,
    reference: str | os.PathLike[str] | Table = "coding",
    *,
    top_level: bool = False,
    min_sessions: int = MIN_SESSIONS,
    forecaster: Forecaster | None = None,
    halves: int = HALVES,
    why: bool = True,
    facility: Facility | None = None,
    usd_per_gpu_hour: float | None = None,
) -> dict[str, Any]:
    """Compare a corpus (path or `corpus.Table`) with a reference: a bundled name, a corpus
    path, or a `corpus.Table`. `top_level` leaves sub-agent sessions out of both. With a
    `forecaster` (and a corpus path on both sides) the document leads with the workload
    factor (`capacity`) and its metrics are ranked by effect; `checklist` is always there."""
    mine = profile(source, top_level=top_level)
    if isinstance(reference, Table):
        ref = Reference("reference", None)
        theirs: Profile | None = profile(reference, name="reference", top_level=top_level)
    else:
        ref = resolve(reference)
        theirs = (
            profile(ref.corpus, name=ref.name, top_level=top_level)
            if ref.corpus is not None
            else None
        )
    comp = comparison(mine, ref, theirs, min_sessions=min_sessions)
    answer = None
    if forecaster is not None:
        if isinstance(source, Table):
            raise StatsError("the workload factor forecasts a corpus file; pass its path")
        answer = factor_for(source, ref, forecaster, halves=halves, why=why)
    return finish(comp, mine, answer, facility=facility, usd_per_gpu_hour=usd_per_gpu_hour)


def finish(
    comp: dict[str, Any],
    mine: Profile,
    answer: Answer | None,
    *,
    facility: Facility | None = None,
    usd_per_gpu_hour: float | None = None,
) -> dict[str, Any]:
    """`comp` with the workload factor, metrics ranked by effect, and the buyer's checklist."""
    comp = ranked(comp, answer)
    comp["checklist"] = checklist(
        mine, comp, answer, facility=facility, usd_per_gpu_hour=usd_per_gpu_hour
    )
    return comp
