"""Which input counts to trust: the local tokenizer's or the provider's.

A turn's `input` is our tokenizer's count of the request as recorded; `usage_input` is what the
provider counted. They disagree when the recording lacks part of the request (a transcript
without the system prompt and tool schemas), when the model's tokenizer is not ours, or when
hidden context (reasoning) is carried. Rule, over the turns that have both counts:

- R = median(usage_input / input). Within `TOLERANCE` (5 %) of 1: the local counts stand.
- Otherwise the provider's counts: input = usage_input (input × R for a turn without one), and
  the difference is split between reused and new tokens by what explains it:
  - R ≤ `MISSING` (1.5×), or R < 1: another tokenizer, so reused and new tokens scale alike
    (by the turn's own ratio);
  - R > 1.5×: content missing from the recording; the missing part (system prompt, tools) is
    sent with every request, so after a session's first turn it counts as reused, and new
    tokens keep their local count.

Block ids (the prefix structure) stay as recorded: they describe the local tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOLERANCE = 0.05
MISSING = 1.5


@dataclass(frozen=True)
class Counts:
    """Input and reused tokens per turn on the chosen basis, and why."""

    basis: str  # "local" or "provider"
    reason: str  # "" (local), "tokenizer" or "missing" (see the module docstring)
    ratio: float  # median provider / local count; NaN when no turn has both
    covered: float  # share of turns with a provider count
    input: np.ndarray  # int64
    reused: np.ndarray  # int64

    @property
    def new(self) -> np.ndarray:
        return self.input - self.reused

    def sentence(self, tokenizer: str) -> str:
        """One line for reports: which count the figures use."""
        if self.basis == "local":
            if np.isnan(self.ratio):
                return f"token counts: {tokenizer} (local); the provider reported none"
            return (
                f"token counts: {tokenizer} (local), within {TOLERANCE:.0%} of the provider's "
                f"(ratio {self.ratio:.2f})"
            )
        why = (
            "the recording lacks part of each request (system prompt, tools): the missing "
            "tokens count as a reused prefix"
            if self.reason == "missing"
            else "the model's tokenizer counts differently"
        )
        return (
            f"token counts: the provider's usage ({self.covered:.0%} of turns; the rest scaled), "
            f"{self.ratio:.2f}× the local {tokenizer} count — {why}"
        )


def counts(input: np.ndarray, reused: np.ndarray, usage: np.ndarray, first: np.ndarray) -> Counts:
    """The counts to use for turns with local `input` and `reused` tokens, provider `usage`
    (-1 where not reported) and `first` (True for a session's first turn)."""
    inp = np.asarray(input, dtype=np.int64)
    reu = np.asarray(reused, dtype=np.int64)
    use = np.asarray(usage, dtype=np.int64)
    both = (use >= 0) & (inp > 0)
    covered = float(both.mean()) if inp.size else 0.0
    if not both.any():
        return Counts("local", "", float("nan"), covered, inp, reu)
    ratio = float(np.median(use[both] / inp[both]))
    if abs(ratio - 1.0) <= TOLERANCE:
        return Counts("local", "", ratio, covered, inp, reu)
    scaled = np.where(both, use, np.rint(inp * ratio).astype(np.int64))
    if ratio > MISSING:
        extra = np.maximum(scaled - inp, 0)
        reused = np.where(np.asarray(first, dtype=bool), reu, reu + extra)
        reason = "missing"
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.where(inp > 0, scaled / np.maximum(inp, 1), ratio)
        reused = np.rint(reu * own).astype(np.int64)
        reason = "tokenizer"
    return Counts("provider", reason, ratio, covered, scaled, np.minimum(reused, scaled))
