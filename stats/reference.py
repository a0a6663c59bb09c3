"""Reference workloads for `compare`: AA-AgentPerf's published figures and bundled corpora.

`coding` (the default) is the reference coding workload: AA-AgentPerf's published figures
together with the bundled `coding` corpus, synthesized by `corpus synth --like coding` from those
figures and AA's own public recordings (the `agentperf-local` corpus: the recordings closest to
the private trajectories AgentPerf replays) — a corpus that meets every published figure, with
full distributions for what AA did not publish (new tokens, reuse, prefix hit ratio, …). A
metric with a published figure takes the worse of the two verdicts.

Other names (`claude-code`, `swe-bench`, `agentperf-local`, `support`, `example`) are bundled
corpora (`corpus.reference.path(name)`), `agentperf-published` is the published figures alone,
and anything else is read as a corpus path.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from stats.errors import StatsError


@dataclass(frozen=True)
class Figure:
    """What a publication says about one metric. Any of: `median`, `mean`, `p95` (point
    values), `lo`/`hi` (the range its values span), `floor` (values reach at least this)."""

    median: float | None = None
    mean: float | None = None
    p95: float | None = None
    lo: float | None = None
    hi: float | None = None
    floor: float | None = None
    quote: str = ""


AGENTPERF_SOURCE = (
    "Artificial Analysis, AA-AgentPerf (2026): benchmark methodology and launch write-ups "
    "(artificialanalysis.ai); coding-agent trajectories, figures as published"
)

# AA-AgentPerf's published figures of its (private) coding trajectories.
AGENTPERF: dict[str, Figure] = {
    "input": Figure(
        lo=5_000,
        hi=131_000,
        mean=27_000,
        quote="input lengths range from ~5K to ~131K tokens per request, mean roughly 27K",
    ),
    "output": Figure(median=150, p95=2_000, quote="output median ≈ 150 tokens, p95 ≈ 2K"),
    "turns": Figure(lo=1, hi=200, quote="up to 200 turns per trajectory"),
    "final_context": Figure(floor=100_000, quote="sequence lengths beyond 100K tokens"),
    "tool_wait": Figure(
        lo=0.1, hi=5.0, median=1.0, quote="simulated tool delays 0.1–5 s, median ≈ 1 s"
    ),
}

BUNDLED = ("claude-code", "swe-bench", "agentperf-local", "support", "example")
CODING_CORPUS = "coding"


@dataclass(frozen=True)
class Reference:
    """A resolved reference: a corpus path, published figures, or both."""

    name: str
    corpus: str | None = None
    published: dict[str, Figure] = field(default_factory=dict)
    source: str = ""
    notes: tuple[str, ...] = ()


def bundled(name: str) -> str:
    """Path of the bundled reference corpus `name`; StatsError when it is not there."""
    try:
        # Built separately and possibly absent: import only when a bundled reference is asked.
        bundle = importlib.import_module("corpus.reference")
    except ImportError as exc:
        raise StatsError(
            f"reference '{name}': the bundled reference corpora are not installed "
            "(no corpus.reference module); pass a corpus file with --reference PATH"
        ) from exc
    try:
        path = Path(bundle.path(name))
    except Exception as exc:  # any failure of the lookup is a missing reference to the user
        raise StatsError(f"reference '{name}': {exc}") from exc
    if not path.is_file():
        raise StatsError(
            f"reference '{name}': bundled corpus {path} is missing; rebuild the reference "
            "corpora or pass a corpus file with --reference PATH"
        )
    return os.fspath(path)


def resolve(ref: str | os.PathLike[str]) -> Reference:
    """The reference named or located by `ref` (see the module docstring)."""
    text = os.fspath(ref)
    if text == "coding":
        try:
            path: str | None = bundled(CODING_CORPUS)
            notes: tuple[str, ...] = ()
        except StatsError as exc:
            path = None
            notes = (f"{exc}; compared with AA-AgentPerf's published figures only",)
        return Reference("coding", path, AGENTPERF, AGENTPERF_SOURCE, notes)
    if text == "agentperf-published":
        return Reference(text, None, AGENTPERF, AGENTPERF_SOURCE)
    if text in BUNDLED:
        return Reference(text, bundled(text))
    if os.path.isfile(text):
        return Reference(text, text)
    names = ", ".join(("coding", "agentperf-published", *BUNDLED))
    raise StatsError(f"reference '{text}': not a bundled reference ({names}) and no such file")
