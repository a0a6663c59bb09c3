"""`compare`: a corpus beside a reference, metric by metric, with verdicts and what they mean.

Verdicts (`match` < `differs` < `far`), thresholds in `THRESHOLDS`:
- against a reference corpus: KS statistic D and the ratio of medians (yours / reference,
  checked only when both medians are > 0): `match` when D ≤ 0.15 and the ratio is within
  1.5× either way; `far` when D > 0.40 or the ratio is beyond 3× either way; else `differs`.
- against published figures: each figure is a check — a point value (median, mean, p95) by its
  ratio (1.5× / 3×, as above), a range by the share of your values inside it (match ≥ 80 %,
  far < 50 %), a floor by your maximum (match ≥ floor, far < floor / 2) — and the metric gets
  the worst of its checks. Where a reference has both, the published figures decide.
- the prefix hit ratio, a single number: match within 5 points, far beyond 15 points.
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

from corpus import Table
from stats.distributions import finite, ks, share_within, summary
from stats.errors import StatsError
from stats.profiles import Profile, Source, profile
from stats.reference import Figure, Reference, resolve

SCHEMA = "agentload.stats.compare/1"
VERDICTS = ("match", "differs", "far")
THRESHOLDS = {
    "ks_match": 0.15,
    "ks_far": 0.40,
    "ratio_match": 1.5,
    "ratio_far": 3.0,
    "range_match": 0.80,
    "range_far": 0.50,
    "points_match": 0.05,
    "points_far": 0.15,
}


@dataclass(frozen=True)
class Metric:
    """A compared distribution: how to get its values from a profile."""

    name: str
    label: str
    unit: str
    per: str  # turn | session
    key: bool
    values: Callable[[Profile], np.ndarray]


METRICS: tuple[Metric, ...] = (
    Metric("input", "input tokens per turn", "tokens", "turn", True, lambda p: p.turns.input),
    Metric("output", "output tokens per turn", "tokens", "turn", True, lambda p: p.turns.output),
    Metric("new", "new tokens per turn", "tokens", "turn", True, lambda p: p.turns.new),
    Metric(
        "reuse_ratio",
        "reused share of input",
        "ratio",
        "turn",
        False,
        lambda p: p.turns.reuse_ratio,
    ),
    Metric(
        "tool_wait", "wait after tool calls", "s", "turn", True, lambda p: p.turns.waits("tool")
    ),
    Metric("user_wait", "wait for the user", "s", "turn", False, lambda p: p.turns.waits("user")),
    Metric("turns", "turns per session", "turns", "session", False, lambda p: p.sessions.turns),
    Metric(
        "final_context",
        "final context per session",
        "tokens",
        "session",
        False,
        lambda p: p.sessions.final_context,
    ),
    Metric(
        "session_tokens",
        "tokens per session",
        "tokens",
        "session",
        False,
        lambda p: p.sessions.tokens,
    ),
)
KEY = tuple(m.name for m in METRICS if m.key) + ("prefix_hit_ratio",)


def worst(verdicts: list[str]) -> str:
    """The worst of `verdicts` (`match` for none)."""
    return max(verdicts, key=VERDICTS.index, default="match")


def ratio_verdict(ratio: float) -> str:
    """Verdict of a ratio of two positive values (symmetric: 2× and ½× are alike)."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "far"
    spread = max(ratio, 1 / ratio)
    if spread <= THRESHOLDS["ratio_match"]:
        return "match"
    return "far" if spread > THRESHOLDS["ratio_far"] else "differs"


def ks_verdict(d: float) -> str:
    if d <= THRESHOLDS["ks_match"]:
        return "match"
    return "far" if d > THRESHOLDS["ks_far"] else "differs"


def points_verdict(diff: float) -> str:
    a = abs(diff)
    if a <= THRESHOLDS["points_match"]:
        return "match"
    return "far" if a > THRESHOLDS["points_far"] else "differs"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (a > 0 and b > 0):
        return None
    return a / b


def distribution_check(yours: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """KS distance and median/mean ratios of two samples, with the verdict."""
    y, r = summary(yours), summary(ref)
    d = ks(yours, ref)
    med = _ratio(y["p50"], r["p50"])
    both_zero = y["p50"] == 0 and r["p50"] == 0
    verdicts = [ks_verdict(d)]
    if med is not None:
        verdicts.append(ratio_verdict(med))
    elif not both_zero:
        verdicts.append("far")  # one median is 0, the other is not
    return {
        "ks": d,
        "median_ratio": med,
        "mean_ratio": _ratio(y["mean"], r["mean"]),
        "verdict": worst(verdicts),
    }


def published_check(yours: np.ndarray, fig: Figure) -> dict[str, Any]:
    """Your values against one published figure: one entry per stated fact."""
    y = summary(yours)
    checks: list[dict[str, Any]] = []
    for key, stat in (("median", "p50"), ("mean", "mean"), ("p95", "p95")):
        want = getattr(fig, key)
        if want is None:
            continue
        got = y[stat]
        r = _ratio(got, want)
        checks.append(
            {
                "check": key,
                "published": want,
                "yours": got,
                "ratio": r,
                "verdict": ratio_verdict(r) if r is not None else "far",
            }
        )
    if fig.lo is not None and fig.hi is not None:
        share = share_within(yours, fig.lo, fig.hi)
        v = (
            "match"
            if share >= THRESHOLDS["range_match"]
            else "differs"
            if share >= THRESHOLDS["range_far"]
            else "far"
        )
        checks.append(
            {"check": "range", "published": [fig.lo, fig.hi], "share_within": share, "verdict": v}
        )
    if fig.floor is not None:
        top = y["max"]
        v = (
            "far"
            if top is None or top < fig.floor / 2
            else "match"
            if top >= fig.floor
            else "differs"
        )
        over = float(np.mean(finite(yours) > fig.floor)) if y["n"] else math.nan
        checks.append(
            {
                "check": "floor",
                "published": fig.floor,
                "yours_max": top,
                "share_above": over,
                "verdict": v,
            }
        )
    return {"quote": fig.quote, "checks": checks, "verdict": worst([c["verdict"] for c in checks])}


def _metric(
    m: Metric, mine: Profile, ref: Profile | None, fig: Figure | None
) -> dict[str, Any] | str:
    """The comparison of one metric, or the reason it was skipped."""
    yours = m.values(mine)
    if not finite(yours).size:
        return "no values in your corpus"
    theirs = m.values(ref) if ref is not None else None
    if theirs is not None and not finite(theirs).size:
        theirs = None
    if theirs is None and fig is None:
        return "no values in the reference"
    out: dict[str, Any] = {
        "label": m.label,
        "unit": m.unit,
        "per": m.per,
        "key": m.key,
        "yours": summary(yours),
        "reference": summary(theirs) if theirs is not None else None,
        "ks": None,
        "median_ratio": None,
        "mean_ratio": None,
        "published": None,
    }
    verdict = None
    if theirs is not None:
        dist = distribution_check(yours, theirs)
        verdict = dist.pop("verdict")
        out.update(dist)
        out["basis"] = "corpus"
    if fig is not None:
        pub = published_check(yours, fig)
        out["published"] = pub
        verdict = pub["verdict"]
        out["basis"] = "published"
    out["verdict"] = verdict
    return out


def _hit_ratio(mine: Profile, ref: Profile | None) -> dict[str, Any] | str:
    y = mine.hits.ratio
    if math.isnan(y):
        return "no input tokens in your corpus"
    if ref is None or math.isnan(ref.hits.ratio):
        return "no prefix hit ratio for the reference"
    r = ref.hits.ratio
    return {
        "label": "prefix-cache hit ratio (infinite cache)",
        "unit": "ratio",
        "per": "corpus",
        "key": True,
        "yours": y,
        "reference": r,
        "difference": y - r,
        "basis": "corpus",
        "verdict": points_verdict(y - r),
    }


def overall(metrics: dict[str, dict[str, Any]]) -> str:
    """The trace-match verdict over the compared metrics (see the module docstring)."""
    key = [m["verdict"] for name, m in metrics.items() if name in KEY]
    every = [m["verdict"] for m in metrics.values()]
    if not key:
        key = every
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
    when the metric was judged on published figures, else the reference corpus's median."""
    cands: list[tuple[Any, Any, str]] = []
    if m.get("basis") == "published":
        for c in m["published"]["checks"]:
            if c["check"] in WHERE:
                cands.append((c["yours"], c["published"], WHERE[c["check"]]))
    elif m.get("reference"):
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


def comparison(mine: Profile, ref: Reference, theirs: Profile | None) -> dict[str, Any]:
    """The JSON-ready comparison of a profile with a resolved reference."""
    metrics: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for m in METRICS:
        got = _metric(m, mine, theirs, ref.published.get(m.name))
        if isinstance(got, str):
            skipped[m.name] = got
        else:
            metrics[m.name] = got
    hit = _hit_ratio(mine, theirs)
    if isinstance(hit, str):
        skipped["prefix_hit_ratio"] = hit
    else:
        metrics["prefix_hit_ratio"] = hit
    if not metrics:
        raise StatsError(f"{mine.name}: no turns with input to compare with {ref.name}")
    return {
        "schema": SCHEMA,
        "file": mine.name,
        "reference": {
            "name": ref.name,
            "corpus": ref.corpus,
            "published": (
                {"source": ref.source, "figures": {k: f.quote for k, f in ref.published.items()}}
                if ref.published
                else None
            ),
            "notes": list(ref.notes),
        },
        "verdict": overall(metrics),
        "metrics": metrics,
        "skipped": skipped,
        "implications": implications(metrics, ref.name),
        "thresholds": dict(THRESHOLDS),
    }


def compare(source: Source, reference: str | os.PathLike[str] | Table = "coding") -> dict[str, Any]:
    """Compare a corpus (path or `corpus.Table`) with a reference: a bundled name, a corpus
    path, or a `corpus.Table`."""
    mine = profile(source)
    if isinstance(reference, Table):
        ref = Reference("reference", None)
        theirs: Profile | None = profile(reference, name="reference")
    else:
        ref = resolve(reference)
        theirs = profile(ref.corpus, name=ref.name) if ref.corpus is not None else None
    return comparison(mine, ref, theirs)
