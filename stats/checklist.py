"""The buyer's checklist: what a capacity buyer asks, in one place, from a comparison and (when
it ran) the forecast behind the workload factor.

Per SLO tier, for your corpus on the forecast engine: concurrent agents at the tier, P95 TTFT,
task cost (joules per session = J per output token × output tokens per session, sub-agents
included; dollars with a GPU-hour price: GPU-seconds per session = GPUs × J per session ÷ mean
watts), power-normalised throughput (output tokens/s per MW = 10⁶ ÷ J per token), and agents per
MW twice: GPU-only (as AA-AgentPerf reports) and facility (GPU watts plus each GPU's share of
`node_watts` per node of `gpus_per_node` GPUs, all times `pue`). Then the three matches: model
(what the forecast assumes vs the models your corpus names), trace (the workload factor and the
verdict), facility.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from stats.capacity import Answer, Capacity
from stats.profiles import Profile


@dataclass(frozen=True)
class Facility:
    """What the facility adds to GPU power. Defaults are stated assumptions, not measurements:
    PUE 1.3, and 2,300 W per 8-GPU node for CPUs, memory, NICs and fans (NVIDIA's DGX H100
    system is specified at 10.2 kW maximum, of which 8 × 700 W are GPUs: ≈ 4.6 kW of
    non-GPU maximum, taken at half)."""

    pue: float = 1.3
    node_watts: float = 2_300.0
    gpus_per_node: int = 8

    def watts(self, gpu_watts: float, gpus: int) -> float:
        """Facility watts of `gpus` GPUs drawing `gpu_watts`: each GPU carries its share of its
        node's overhead (a 1-GPU engine is an eighth of an 8-GPU node, not a whole node)."""
        nodes = max(gpus, 1) / self.gpus_per_node
        return (gpu_watts + nodes * self.node_watts) * self.pue


def _models(p: Profile) -> dict[str, int]:
    t = p.table
    names = [t.vocab[i] if 0 <= i < len(t.vocab) else "" for i in t.sessions["model"].tolist()]
    return dict(Counter(n or "(unknown)" for n in names).most_common(5))


def output_per_session(p: Profile) -> float:
    """Output tokens per top-level session, its sub-agents' output included."""
    top = int(np.count_nonzero(~p.sessions.is_subagent))
    return float(p.sessions.output.sum()) / top if top else math.nan


def _tier(
    c: Capacity, gpus: int, per_session: float, facility: Facility, usd: float | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "floor": c.floor,
        "ttft": c.ttft,
        "agents": c.agents,
        "capped": c.capped,
        "p95_ttft": c.p95_ttft,
        "p25_speed": c.p25_speed,
        "joules_per_session": None,
        "usd_per_session": None,
        "tokens_per_s_per_mw": None,
        "agents_per_mw_gpu": c.agents_per_mw,
        "agents_per_mw_facility": None,
        "mean_w_gpu": c.mean_w,
        "mean_w_facility": None,
    }
    if c.j_per_token and math.isfinite(per_session):
        joules = c.j_per_token * per_session
        out["joules_per_session"] = joules
        out["tokens_per_s_per_mw"] = 1e6 / c.j_per_token
        if usd is not None and c.mean_w:
            gpu_seconds = gpus * joules / c.mean_w
            out["usd_per_session"] = usd * gpu_seconds / 3600
    if c.mean_w and c.agents:
        fw = facility.watts(c.mean_w, gpus)
        out["mean_w_facility"] = fw
        out["agents_per_mw_facility"] = c.agents / (fw / 1e6)
    return out


def checklist(
    mine: Profile,
    comparison: dict[str, Any],
    answer: Answer | None,
    *,
    facility: Facility | None = None,
    usd_per_gpu_hour: float | None = None,
) -> dict[str, Any]:
    """The JSON-ready checklist (module docstring); forecast figures are null without one."""
    fac = facility or Facility()
    per_session = output_per_session(mine)
    yours = answer.yours if answer is not None else None
    tiers = (
        [_tier(c, yours.gpus, per_session, fac, usd_per_gpu_hour) for c in yours.tiers]
        if yours is not None
        else []
    )
    head = answer.headline if answer is not None else None
    return {
        "forecast": yours is not None,
        "engine": answer.engine if answer is not None else None,
        "gpus": yours.gpus if yours is not None else None,
        "output_tokens_per_session": per_session if math.isfinite(per_session) else None,
        "usd_per_gpu_hour": usd_per_gpu_hour,
        "tiers": tiers,
        "model_match": {
            "forecast_assumes": answer.engine if answer is not None else None,
            "your_models": _models(mine),
        },
        "trace_match": {
            "verdict": comparison["verdict"],
            "factor": head.factor if head is not None else None,
            "low": head.low if head is not None else None,
            "high": head.high if head is not None else None,
            "answer": answer.sentence() if answer is not None else None,
        },
        "facility_match": {
            "pue": fac.pue,
            "node_watts": fac.node_watts,
            "gpus_per_node": fac.gpus_per_node,
            "note": (
                "facility agents/MW = agents ÷ ((GPU W + GPUs ÷ GPUs per node × node W) × PUE); "
                "the defaults "
                "(PUE 1.3, 2,300 W per 8-GPU node) are stated assumptions — set --pue and "
                "--node-watts for your site"
            ),
        },
    }
