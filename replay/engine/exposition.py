"""Prometheus text exposition of the simulated engine's stats, in the names real exporters use.

GPU power and energy use DCGM-exporter names and units (`DCGM_FI_DEV_POWER_USAGE` in W,
`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` in mJ since start); serving counters use vLLM's names
(prefix-cache queries/hits and prompt/generation totals count tokens, as vLLM's do). A constant
`agentload_engine_simulated 1` lets a scraper tell the simulation from real hardware.
"""

from __future__ import annotations

import socket

from replay.engine.profiles import Profile
from replay.engine.scheduler import Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(pairs: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in pairs.items()) + "}"


def render(stats: Stats, profile: Profile, model: str | None = None) -> str:
    """The /metrics page for `stats` (Prometheus text format 0.0.4)."""
    host = socket.gethostname()
    gpus = [
        _labels(
            {
                "gpu": str(i),
                "UUID": f"GPU-00000000-0000-0000-0000-simulated{i:03d}",
                "device": f"nvidia{i}",
                "modelName": profile.gpu_name,
                "Hostname": host,
            }
        )
        for i in range(max(1, profile.gpus))
    ]
    vllm = _labels({"model_name": model or profile.model, "engine": "0"})
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, value: float | int, labels: str) -> None:
        family = name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name
        lines.append(f"# HELP {family} {help_}")
        lines.append(f"# TYPE {family} {kind}")
        lines.append(f"{name}{labels} {value}")

    # The engine stands for `profile.gpus` GPUs: one series each, the draw split evenly.
    share = 1 / len(gpus)
    for name, kind, help_, value in (
        ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", stats.power_w),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter",
         "Total energy consumption since boot (in mJ).", stats.energy_j * 1000),
    ):
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels in gpus:
            v = round(value * share, 3) if kind == "gauge" else int(value * share)
            lines.append(f"{name}{labels} {v}")
    metric(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
        stats.running,
        vllm,
    )
    metric(
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
        stats.waiting,
        vllm,
    )
    usage = stats.kv_blocks_used / stats.kv_blocks_total if stats.kv_blocks_total else 0.0
    metric(
        "vllm:kv_cache_usage_perc",
        "gauge",
        "KV-cache usage. 1 means 100 percent usage.",
        round(usage, 6),
        vllm,
    )
    metric(
        "vllm:prefix_cache_queries_total",
        "counter",
        "Prefix cache queries, in terms of number of queried tokens.",
        stats.prefix_cache_queries_total,
        vllm,
    )
    metric(
        "vllm:prefix_cache_hits_total",
        "counter",
        "Prefix cache hits, in terms of number of cached tokens.",
        stats.prefix_cache_hits_total,
        vllm,
    )
    metric(
        "vllm:prompt_tokens_total",
        "counter",
        "Number of prefill tokens processed.",
        stats.prompt_tokens_total,
        vllm,
    )
    metric(
        "vllm:generation_tokens_total",
        "counter",
        "Number of generation tokens processed.",
        stats.generation_tokens_total,
        vllm,
    )
    family = "vllm:request_success"
    lines.append(f"# HELP {family} Count of finished requests by finish reason.")
    lines.append(f"# TYPE {family} counter")
    for reason, count in sorted(stats.requests_finished.items()):
        labels = vllm[:-1] + f',finished_reason="{reason}"' + "}"
        lines.append(f"{family}_total{labels} {count}")
    metric(
        "agentload_engine_steps_total",
        "counter",
        "Engine steps run by the simulated engine.",
        stats.steps_total,
        vllm,
    )
    metric(
        "agentload_engine_simulated",
        "gauge",
        "1: these figures come from agentload's simulated engine, not hardware.",
        1,
        _labels({"profile": profile.name}),
    )
    return "\n".join(lines) + "\n"
