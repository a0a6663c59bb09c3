"""Client efficiency of `replay --ray` against `--workers`: streamed tokens per client CPU-second.

A two-node Ray cluster on this machine (two raylets, one CPU each) and `replay serve --profile
instant` (zero modelled cost, loopback). The same agents, with no waits, run once as two worker
processes (`ProcessFleet`, `--workers 2`) and once as two Ray actors, one per node (`RayFleet`,
`--ray`), alternately `--rounds` times. Each run's window starts after the ramp: the tokens of the
requests that ended inside it over the CPU time its shard processes used inside it (start-up
costs excluded), so the ratio Ray ÷ workers is per shard process, i.e. per node. Raylets and the
GCS are reported beside it (they are Ray's own overhead on each node).

Usage: uv run python benchmarks/bench_ray.py [--agents 200] [--seconds 8] [--rounds 2]
Target: ratio ≥ 0.9. Bounded: fixed durations, loopback only, the cluster always shut down.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_replay import make_corpus  # the same corpus as bench_replay's efficiency run

from replay.client import ClientFactory
from replay.processes import ProcessFleet, Settings
from replay.rayfleet import RayFleet, load_ray
from replay.simulated import Simulated

SMALL = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024, "include_dashboard": False}


def _cpu(pids: list[int]) -> float:
    """User + system CPU-seconds of these processes (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def _pids(fleet: ProcessFleet | RayFleet) -> list[int]:
    if isinstance(fleet, ProcessFleet):
        return [p.pid for p in fleet._procs if p.pid is not None]
    return [await a.__ray_call__.remote(lambda self: os.getpid()) for a in fleet._actors]


async def one(fleet: ProcessFleet | RayFleet, epoch: int, agents: int,
              seconds: float) -> tuple[float, float]:
    """(tokens, shard CPU-seconds) inside the window after a 2 s ramp and 1 s settling."""
    await fleet.start()
    try:
        pids = await _pids(fleet)
        t0 = time.perf_counter_ns() + 50_000_000
        await fleet.begin(0, agents, t0, ramp=2.0)
        await asyncio.sleep(3.05)
        fleet.take()
        a, cpu_a = time.perf_counter_ns(), _cpu(pids)
        samples = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await asyncio.sleep(0.25)
            samples.extend(fleet.take())
        b, cpu_b = time.perf_counter_ns(), _cpu(pids)
        samples.extend(await fleet.finish(b, 0.0))
    finally:
        await fleet.close()
    lo, hi = (a - epoch) / 1e9, (b - epoch) / 1e9
    tokens = sum(s.output for s in samples if not s.error and not s.cut and lo <= s.end <= hi)
    return float(tokens), cpu_b - cpu_a


def ray_overhead() -> list[int]:
    """This machine's raylets and GCS server."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() in ("raylet", "gcs_server"):
                    out.append(int(d.name))
            except OSError:
                pass
    return out


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "bench.zst"
        make_corpus(corpus)
        async with Simulated("instant") as url:
            factory = ClientFactory(url=url + "/v1", model="sim-instant")
            print(f"server: replay serve --profile instant at {url}; {args.agents} agents, "
                  f"no waits, {args.seconds:g} s windows, 2 shards either way")
            ratios = []
            for r in range(args.rounds):
                rates = {}
                for kind in ("workers", "ray"):
                    epoch = time.perf_counter_ns()
                    s = Settings(corpus=str(corpus), tag="bench", wait="none", epoch=epoch,
                                 seed=1)
                    fleet: ProcessFleet | RayFleet = (
                        ProcessFleet(s, factory, 2) if kind == "workers"
                        else RayFleet(s, factory, "auto"))
                    overhead = ray_overhead()
                    extra = _cpu(overhead)
                    tokens, cpu = await one(fleet, epoch, args.agents, args.seconds)
                    rates[kind] = tokens / max(cpu, 1e-9)
                    print(f"  round {r + 1} {kind:>7}: {tokens:,.0f} tokens, {cpu:.2f} shard "
                          f"CPU-s -> {rates[kind]:,.0f} tokens per CPU-s (raylets+GCS used "
                          f"{_cpu(overhead) - extra:.2f} CPU-s over the whole run)")
                ratios.append(rates["ray"] / rates["workers"])
            print(f"ratio ray ÷ workers (tokens per client CPU-second per node): median "
                  f"{statistics.median(ratios):.2f} over {len(ratios)} rounds "
                  f"({', '.join(f'{x:.2f}' for x in ratios)}); target ≥ 0.9")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    ray = load_ray()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**SMALL, "resources": {"a": 1}})
    try:
        cluster.add_node(**SMALL, resources={"b": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False,
                 configure_logging=False)
        asyncio.run(bench(args))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
