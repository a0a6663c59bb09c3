"""Benchmark: the `instant` simulated engine under many concurrent streaming clients.

Starts `python -m replay.engine --profile instant --port 0` as a subprocess, drives it with N
concurrent raw aiohttp streaming chat clients (ignore_eos, fixed output length), and reports
server CPU per streamed token and aggregate throughput, each as a ratio against a 10-client
baseline run in the same invocation (absolute numbers depend on the machine).

Then, on the modelled `h100` profile, the per-stream decode speed of 16 concurrent streams as
a ratio to one stream alone (modelled: 16.0 ms steps alone, 19.2 ms with 16 decoding, so
about 0.83): a wall-clock comparison, so it lives here, not in the tests.

    uv run python benchmarks/bench_engine.py [--clients 1000] [--tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import aiohttp


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one(session: aiohttp.ClientSession, url: str, i: int, tokens: int) -> int:
    body = {
        "model": "sim",
        "messages": [{"role": "user", "content": f"client {i}: benchmark prompt " * 20}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
    }
    chunks = 0
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if line.startswith(b"data: {"):
                chunks += 1
    return chunks


async def run(url: str, pid: int, clients: int, tokens: int) -> tuple[float, float, float]:
    """(wall seconds, server CPU seconds, tokens) for one round of `clients` streams."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        counts = await asyncio.gather(*(one(session, url, i, tokens) for i in range(clients)))
        wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    assert min(counts) >= 1
    return wall, cpu, float(clients * tokens)


async def stream_speed(session: aiohttp.ClientSession, url: str, i: int, tokens: int) -> float:
    """One stream's decode speed: tokens/s between its first and last content chunk."""
    body = {"model": "sim", "messages": [{"role": "user", "content": f"stream {i}"}],
            "max_tokens": tokens, "ignore_eos": True, "stream": True}
    stamps = []
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if line.startswith(b"data: {") and b'"content"' in line:
                stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


async def per_stream(url: str, streams: int, tokens: int) -> list[float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        return list(await asyncio.gather(
            *(stream_speed(session, url, i, tokens) for i in range(streams))))


def crowding(tokens: int = 60, streams: int = 16) -> float:
    """Median per-stream speed of `streams` concurrent streams ÷ one stream's, on `h100`."""
    cmd = [sys.executable, "-m", "replay.engine", "--profile", "h100", "--port", "0"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        try:
            alone = asyncio.run(per_stream(url, 1, tokens))[0]
            crowd = sorted(asyncio.run(per_stream(url, streams, tokens)))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return crowd[len(crowd) // 2] / alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--baseline", type=int, default=10)
    args = parser.parse_args()
    cmd = [sys.executable, "-m", "replay.engine", "--profile", "instant", "--port", "0"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        try:
            # Longer streams for the baseline so both rounds last long enough to measure.
            base = asyncio.run(run(url, proc.pid, args.baseline, args.tokens * 20))
            big = asyncio.run(run(url, proc.pid, args.clients, args.tokens))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for label, (wall, cpu, toks) in ((f"{args.baseline} clients", base), (f"{args.clients}", big)):
        print(
            f"{label:>12}: {toks / wall:>10.0f} tok/s aggregate, "
            f"{cpu / toks * 1e6:6.1f} us server CPU per token, wall {wall:.2f}s"
        )
    throughput = (big[2] / big[0]) / (base[2] / base[0])
    cpu_per_token = (big[1] / big[2]) / (base[1] / base[2])
    print(
        f"ratio {args.clients}/{args.baseline} clients: throughput x{throughput:.2f}, "
        f"server CPU per token x{cpu_per_token:.2f}"
    )
    print(f"h100 profile: per-stream speed with 16 streams / alone x{crowding():.2f} "
          "(modelled x0.83)")


if __name__ == "__main__":
    main()
