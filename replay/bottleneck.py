"""Why a level failed, in one line from its figures: KV cache full and requests queueing, queueing
with KV to spare (batch limits), prefill-bound, or compute-bound decoding. That line is what tells
a team what to buy (more HBM, more compute, or a different server configuration). Pure.
"""

from __future__ import annotations

from replay.results import Level, Load

KV_FULL = 0.9
"""KV-cache usage (0–1) at which the cache counts as full."""
QUEUEING = 0.5
"""Mean waiting requests over the window at which requests count as queueing."""


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.0%}"


def explain(level: Level) -> str:
    """One line on why `level` failed its lowest failing tier; "" when it failed none."""
    failed = [v for v in level.verdicts if not v.passed and not v.inconclusive]
    if not failed:
        return ""
    v = failed[0]
    tier = f"fails {v.floor:g} tok/s · {v.ttft:g} s"
    if v.reason.startswith("error rate"):
        kinds = ", ".join(f"{k} ×{n}" for k, n in level.errors_by_kind.items())
        return f"{tier}: {v.reason} ({kinds}): the server refused or dropped requests"
    ttft = v.reason.startswith("P95 TTFT")
    load = level.server
    if load is None:
        what = "time to first token" if ttft else "decode speed"
        return (f"{tier}: {v.reason}; the server publishes no load figures, so whether requests "
                f"queued is unknown ({what} is the limit seen by the client)")
    return f"{tier}: {_why(load, ttft, level)}"


def _why(load: Load, ttft: bool, level: Level) -> str:
    waiting = load.waiting_mean or 0.0
    queueing = waiting >= QUEUEING
    kv = load.kv_usage_max
    if queueing and kv is not None and kv >= KV_FULL:
        return (f"KV cache full (peak {_pct(kv)}) and requests queueing (mean {waiting:.1f} "
                "waiting): more KV memory (HBM, GPUs or replicas) serves more agents")
    if queueing:
        return (f"requests queueing (mean {waiting:.1f} waiting) with KV cache to spare (peak "
                f"{_pct(kv)}): the server's batch limits (e.g. vLLM --max-num-seqs, "
                "--max-num-batched-tokens) or its compute cap concurrency")
    if ttft:
        rate = "" if load.prompt_tps is None else f", {load.prompt_tps:,.0f} prompt tok/s"
        hit = "" if load.cache_hit_ratio is None else f", {_pct(load.cache_hit_ratio)} cached"
        return (f"prefill-bound: no queue, yet P95 TTFT {level.p95_ttft or 0:.2f} s{rate}{hit}: "
                "faster prefill (compute) or more prefix-cache hits")
    running = "" if load.running_mean is None else f"{load.running_mean:.1f} requests running, "
    rate = "" if load.generation_tps is None else f"{load.generation_tps:,.0f} output tok/s, "
    return (f"compute-bound decoding: no queue, {running}{rate}P25 "
            f"{level.p25_speed or 0:.1f} tok/s each: more compute or memory bandwidth per "
            "replica")
