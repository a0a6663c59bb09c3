"""Client performance of `replay`: ratios against the same run's baselines.

Against `replay serve --profile instant` (zero modelled cost, loopback only):

1. client-added TTFT: one replay process runs `--agents` concurrent streaming agents whose tool
   waits (`--pace`) keep the request rate within what the instant server serves on this
   machine. What the client adds to a measured TTFT is the send path (from the request's
   start stamp until aiohttp has written the body, via a TraceConfig) plus the event-loop lag
   before an arriving first token is timestamped (stamps written into a pipe every 5 ms by
   another process, read by the same loop: I/O dispatch delay, as a token's bytes see it).
   Medians, reported as a ratio to the 1 ms budget; schedule lag (turn due → request start:
   prompt synthesis, encoding, timer lateness) is reported beside it. A second run with
   AA's 1 s tool delays overloads the 2-core server, so nearly every stream is active at once:
   reported for context.
2. efficiency: the same concurrency with no waits, driven once by replay (sharded over
   `--workers` processes) and once by AIPerf (installed in its own venv, see PEERS.md). Each
   tool runs twice with different lengths; the *marginal* client CPU-seconds per streamed
   token (difference of the two runs, so start-up costs cancel) gives streamed tokens per
   client CPU-second, reported as replay ÷ AIPerf.

Usage: uv run python benchmarks/bench_replay.py [--agents 1000] [--aiperf PATH-TO-aiperf]
Bounded: every phase has a fixed duration or request count; traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import aiohttp
import numpy as np

from corpus import Header, Turn, Writer
from replay.client import Client, ClientFactory
from replay.fleet import LocalFleet
from replay.processes import ProcessFleet, Settings, make_worker
from replay.simulated import Simulated
from replay.workload import Workload

INPUT, OUTPUT = 200, 100
_TICKER = """
import os, time
end = time.monotonic() + 600
while time.monotonic() < end:
    time.sleep(0.005)
    os.write(1, time.perf_counter_ns().to_bytes(8, "little"))
"""


def make_corpus(path: Path, sessions: int = 64, turns: int = 64) -> None:
    """Sessions of `turns` independent 200-token prompts asking for 100 tokens (like AIPerf's
    synthetic workload: no prefix reuse)."""
    next_id = 0
    with Writer(path, Header(domain="bench", block_size=64), keys=False) as w:
        for _ in range(sessions):
            sid = w.open_session(model="m", api="openai-chat")
            for t in range(turns):
                n = -(-INPUT // 64)
                blocks = list(range(next_id, next_id + n))
                next_id += n
                w.add_turn(sid, Turn(t=float(t), input=INPUT, output=OUTPUT), blocks)
            w.close_session(sid)


# -- the client side, run in a child process so its CPU time can be measured --------------


async def _client(url: str, corpus: str, agents: int, seconds: float, workers: int,
                  wait: str, ramp: float) -> dict[str, float]:
    epoch = time.perf_counter_ns()
    s = Settings(corpus=corpus, tag="bench", wait=wait, epoch=epoch, seed=1)
    factory = ClientFactory(url=url + "/v1", model="sim-instant")
    lags: list[float] = []
    # I/O dispatch lag: a separate process writes CLOCK_MONOTONIC stamps into a pipe every
    # 5 ms; the loop's reader callback sees each one as it would see a first token's bytes.
    ticker = subprocess.Popen(  # noqa: ASYNC220 - starts at once; nothing to await
        [sys.executable, "-c", _TICKER], stdout=subprocess.PIPE, bufsize=0
    )
    assert ticker.stdout is not None
    fd = ticker.stdout.fileno()
    os.set_blocking(fd, False)
    pending = bytearray()

    def readable() -> None:
        now = time.perf_counter_ns()
        try:
            pending.extend(os.read(fd, 65536))
        except BlockingIOError:
            return
        while len(pending) >= 8:
            stamp = int.from_bytes(pending[:8], "little")
            del pending[:8]
            lags.append((now - stamp) / 1e9)

    loop = asyncio.get_running_loop()
    loop.add_reader(fd, readable)

    sends: list[float] = []

    async def on_start(session: object, ctx: types.SimpleNamespace, params: object) -> None:
        ctx.t0 = time.perf_counter()

    async def on_sent(session: object, ctx: types.SimpleNamespace, params: object) -> None:
        if not getattr(ctx, "sent", False):
            ctx.sent = True
            sends.append(time.perf_counter() - ctx.t0)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_chunk_sent.append(on_sent)
    client = None
    if workers > 1:
        fleet: LocalFleet | ProcessFleet = ProcessFleet(s, factory, workers)
        await fleet.start()
    else:
        client = Client(factory.url, model=factory.model, trace_configs=[trace])
        await client.open()
        fleet = LocalFleet(make_worker(s, Workload.load(corpus), client))
    t0 = time.perf_counter_ns() + 50_000_000
    await fleet.begin(0, agents, t0, ramp=ramp)
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        await asyncio.sleep(0.25)
        samples.extend(fleet.take())
    samples.extend(await fleet.finish(time.perf_counter_ns(), 0.0))
    loop.remove_reader(fd)
    ticker.kill()
    ticker.wait()
    await fleet.close()
    if client is not None:
        await client.close()
    ok = [x for x in samples if not x.error]
    ramp_end = (t0 - epoch) / 1e9 + ramp
    steady = [x for x in ok if x.start >= ramp_end]
    pre = np.array([max(0.0, x.start - x.planned) for x in steady]) * 1e3
    ttft = np.array([x.first - x.start for x in steady if x.first > 0]) * 1e3
    return {
        "requests": len(ok),
        "errors": len(samples) - len(ok),
        "tokens": float(sum(x.output for x in ok)),
        "pre_send_ms_p50": float(np.median(pre)) if pre.size else float("nan"),
        "loop_lag_ms_p50": float(np.median(lags)) * 1e3 if lags else float("nan"),
        "ttft_ms_p50": float(np.median(ttft)) if ttft.size else float("nan"),
        "lag_ms_p95": float(np.percentile(lags, 95)) * 1e3 if lags else float("nan"),
        "send_ms_p50": float(np.median(sends)) * 1e3 if sends else float("nan"),
        "schedule_lag_ms_p50": float(np.median(
            [max(0.0, x.start - x.planned) * 1e3 for x in steady if x.turn > 0] or [0.0])),
    }


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_client(url: str, corpus: Path, agents: int, seconds: float, workers: int,
               wait: str, ramp: float) -> tuple[dict[str, float], float]:
    before = _children_cpu()
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, "--corpus", str(corpus), "--agents",
         str(agents), "--seconds", str(seconds), "--workers", str(workers), "--wait", wait,
         "--ramp", str(ramp)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1]), _children_cpu() - before


def run_aiperf(aiperf: str, url: str, concurrency: int, requests: int,
               workdir: Path) -> tuple[float, float]:
    """(streamed output tokens, client CPU seconds) of one AIPerf run."""
    cache = workdir / "tiktoken-cache"
    cache.mkdir(exist_ok=True)
    blob = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    import tiktoken_ext

    src = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    shutil.copy(src, cache / hashlib.sha1(blob.encode()).hexdigest())
    art = workdir / f"aiperf-{requests}"
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)}
    before = _children_cpu()
    subprocess.run(
        [aiperf, "profile", "--model", "sim-instant", "--url", url, "--endpoint-type", "chat",
         "--streaming", "--tokenizer", "cl100k_base", "--concurrency", str(concurrency),
         "--request-count", str(requests), "--synthetic-input-tokens-mean", str(INPUT),
         "--output-tokens-mean", str(OUTPUT), "--output-tokens-stddev", "0",
         "--extra-inputs", "ignore_eos:true", "--artifact-dir", str(art), "--ui-type", "none"],
        check=True, capture_output=True, env=env, timeout=600,
    )
    cpu = _children_cpu() - before
    doc = json.loads((art / "profile_export_aiperf.json").read_text())
    return float(doc["total_output_tokens"]["avg"]), cpu


async def _serve_and_bench(args: argparse.Namespace, have_aiperf: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = work / "bench.zst"
        make_corpus(corpus)
        async with Simulated("instant") as url:
            loop = asyncio.get_running_loop()
            print(f"server: replay serve --profile instant at {url}; {args.agents} agents")
            pace = args.pace
            lat, _ = await loop.run_in_executor(
                None, run_client, url, corpus, args.agents, pace + args.seconds, 1,
                f"fixed:{pace:g}", pace)
            added = lat["send_ms_p50"] + lat["loop_lag_ms_p50"]
            print(f"[latency] one process, {args.agents} streaming agents, {pace:g} s tool waits "
                  f"(within the instant server's capacity): {lat['requests']:.0f} requests")
            print(f"  client-added TTFT at the median = {added:.3f} ms (send path "
                  f"{lat['send_ms_p50']:.3f} + event-loop lag {lat['loop_lag_ms_p50']:.3f});"
                  f" ratio to the 1 ms budget: {added / 1.0:.2f}")
            print(f"  schedule lag (due → sent) p50 {lat['schedule_lag_ms_p50']:.2f} ms; measured "
                  f"TTFT p50 {lat['ttft_ms_p50']:.2f} ms (server included)")
            sat, _ = await loop.run_in_executor(
                None, run_client, url, corpus, args.agents, args.seconds, 1, "aa", 5.0)
            sat_added = sat["send_ms_p50"] + sat["loop_lag_ms_p50"]
            print(f"[saturated] same, AA tool delays (median 1 s; more than the 2-core server "
                  f"serves, so ~all {args.agents} streams are active at once): client-added "
                  f"TTFT median {sat_added:.1f} ms, ratio to budget {sat_added:.1f}")
            short, cpu_short = await loop.run_in_executor(
                None, run_client, url, corpus, args.agents, args.seconds / 2, args.workers,
                "none", 2.0)
            long, cpu_long = await loop.run_in_executor(
                None, run_client, url, corpus, args.agents, args.seconds * 1.5, args.workers,
                "none", 2.0)
            ours = (long["tokens"] - short["tokens"]) / max(1e-9, cpu_long - cpu_short)
            print(f"[efficiency] replay, {args.agents} agents, no waits, {args.workers} "
                  f"worker(s): marginal {ours:,.0f} streamed tokens per client CPU-second")
            if have_aiperf:
                base = f"{url}"
                a_tok, a_cpu = await loop.run_in_executor(
                    None, run_aiperf, args.aiperf, base, args.agents, args.agents, work)
                b_tok, b_cpu = await loop.run_in_executor(
                    None, run_aiperf, args.aiperf, base, args.agents, 3 * args.agents, work)
                theirs = (b_tok - a_tok) / max(1e-9, b_cpu - a_cpu)
                print(f"[efficiency] AIPerf, concurrency {args.agents}: marginal "
                      f"{theirs:,.0f} streamed tokens per client CPU-second")
                print(f"  ratio replay ÷ AIPerf (tokens per client CPU-second): "
                      f"{ours / theirs:.2f}")
                print(f"  whole-run ratio incl. start-up: "
                      f"{(long['tokens'] / cpu_long) / (b_tok / b_cpu):.2f}")
            else:
                print("AIPerf not found (--aiperf PATH); skipped the peer comparison")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--aiperf", default="/tmp/aiperf-venv/bin/aiperf")
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    p.add_argument("--pace", type=float, default=12.0,
                   help="tool wait (s) of the latency phase; agents ÷ pace = request rate")
    p.add_argument("--wait", default="aa", help=argparse.SUPPRESS)
    p.add_argument("--ramp", type=float, default=5.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        result = asyncio.run(_client(args.client, args.corpus, args.agents, args.seconds,
                                     args.workers, args.wait, args.ramp))
        print(json.dumps(result))
        return
    asyncio.run(_serve_and_bench(args, bool(args.aiperf) and os.path.exists(args.aiperf)))


if __name__ == "__main__":
    main()
