"""Benchmark: `replay --forecast` speed, memory and agreement with a live run.

    uv run python benchmarks/bench_forecast.py speed    [--agents 100 1000 10000]
    uv run python benchmarks/bench_forecast.py search   # the issue-16 target run
    uv run python benchmarks/bench_forecast.py compare  [--corpus C --agents N]

`speed`: one level of N agents on the bundled Claude Code corpus (773 sessions) against 32
modelled 8-GPU H100 groups (256 GPUs, `profiles/h100x8-long.json`: 1M-token context, which the
corpus needs — its prompts are p50 104K, p90 234K tokens; the single-GPU `h100` profile's
131K context refuses the 30 % that are longer, so a search on 256 single-GPU replicas stops at
2 agents on errors), reported as modelled seconds per wall second and per CPU second.
`search`: the full tier search (`--full`) on the same cluster; wall, CPU and peak memory
(target: ≤ 5 minutes wall on 2 cores within 4 GB).
`compare`: the same corpus, profile and level measured live against the simulated engine
(`replay serve`, via replay's own default endpoint, in real time) and as a forecast, side by
side: P25 speed, P95 TTFT and cache hit ratio as forecast ÷ live (target: within 5 %), and a
quick tier search both ways (target: tier agents within one search step).

Every figure is a ratio within the run (modelled ÷ wall, forecast ÷ live); the CPU time and
peak memory are the child process's own, so a busy machine inflates wall time but not the CPU
figures. `--baseline DIR` (speed, search) runs the same forecast in another checkout (say a git
worktree of an older commit) right after, for the CPU ratio old ÷ new and a check that the JSON
is identical apart from wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus" / "reference" / "claude-code.zst"
PROFILE = ROOT / "benchmarks" / "profiles" / "h100x8-long.json"
CLUSTER = ["--profile", str(PROFILE), "--replicas", "32", "--router", "prefix"]


def replay(args: list[str], cwd: Path = ROOT) -> tuple[dict[str, object], float, float, float]:
    """Run `replay ARGS --json …` in a child (the `replay` package of checkout `cwd`); (its
    JSON, wall s, CPU s, peak RSS MB) — CPU and memory are that child's alone."""
    with tempfile.TemporaryDirectory() as tmp:
        out, log = Path(tmp) / "run.json", Path(tmp) / "stderr"
        t0 = time.perf_counter()
        with log.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "replay", *args, "--no-progress", "--json", str(out)],
                cwd=cwd, stdout=subprocess.DEVNULL, stderr=err,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if not out.exists():
            sys.exit(f"replay failed ({proc.returncode}): {log.read_text().strip()[-500:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return json.loads(out.read_text()), wall, cpu, usage.ru_maxrss / 1024


def _same(a: dict[str, object], b: dict[str, object]) -> bool:
    """Whether two runs' JSON agree except for wall time (and the note that quotes it)."""
    def strip(doc: dict[str, object]) -> dict[str, object]:
        d = json.loads(json.dumps(doc))
        d["modelled"].pop("wall_s", None)
        d["notes"] = [n for n in d["notes"] if "wall seconds" not in n]
        return d  # type: ignore[no-any-return]
    return strip(a) == strip(b)


def _versus(args: list[str], baseline: Path | None, doc: dict[str, object], cpu: float) -> str:
    """With a baseline checkout: the same run there, as "old/new CPU" and whether the JSON
    agrees (measured back to back, so both see the same machine)."""
    if baseline is None:
        return ""
    old, _, old_cpu, old_rss = replay(args, cwd=baseline)
    return (f"; baseline {old_cpu:.1f} CPU s (peak {old_rss:,.0f} MB): {old_cpu / cpu:.2f}x "
            f"less CPU now, JSON {'identical' if _same(old, doc) else 'DIFFERENT'} "
            "except wall time")


def speed(agents: list[int], baseline: Path | None) -> None:
    for n in agents:
        args = [str(CORPUS), "--forecast", *CLUSTER, "--agents", str(n), "--full", "--duration",
                "60", "--warmup", "30", "--warmup-max", "30"]
        doc, wall, cpu, rss = replay(args)
        m = doc["modelled"]
        assert isinstance(m, dict)
        level = doc["levels"][-1]  # type: ignore[index]
        print(f"[speed] {n:>6} agents: {m['modelled_s']:.0f} modelled s in {m['wall_s']:.1f} "
              f"wall s = {m['modelled_s'] / m['wall_s']:.1f}x real time, "
              f"{m['modelled_s'] / cpu:.1f} modelled s per CPU s ({cpu:.1f} CPU s incl. "
              f"start-up); {level['requests']} requests; peak RSS {rss:,.0f} MB"
              + _versus(args, baseline, doc, cpu))


def search(baseline: Path | None) -> None:
    args = [str(CORPUS), "--forecast", *CLUSTER, "--full", "--max-agents", "16384"]
    doc, wall, cpu, rss = replay(args)
    m = doc["modelled"]
    assert isinstance(m, dict)
    tiers = ", ".join(f"{t['floor']:g} tok/s: {t['agents']}" for t in doc["tiers"])  # type: ignore[union-attr]
    print(f"[search] {len(doc['levels'])} levels, {m['modelled_s']:,.0f} modelled s in "  # type: ignore[arg-type]
          f"{wall:.0f} s wall, {cpu:.0f} s CPU (target ≤ 300 s wall on 2 cores); peak RSS "
          f"{rss:,.0f} MB (target ≤ 4,096); tiers {tiers}" + _versus(args, baseline, doc, cpu))


def _level(doc: dict[str, object]) -> dict[str, float]:
    lv = doc["levels"][-1]  # type: ignore[index]
    cache = lv["fidelity"]["cache_counters"]
    return {"P25 speed": lv["p25_speed"], "P95 TTFT": lv["p95_ttft"], "cache hit": cache,
            "requests": lv["requests"]}


def compare(corpus: str, agents: int, profile: str) -> None:
    level = [corpus, "--profile", profile, "--agents", str(agents), "--full", "--duration",
             "60", "--warmup", "20", "--warmup-max", "40", "--min-requests", "20", "--seed", "3",
             "--wait", "cap:10"]
    live, lwall, _, _ = replay([*level, "--time-scale", "1"])
    fc, fwall, _, _ = replay([*level, "--forecast"])
    a, b = _level(live), _level(fc)
    for key in a:
        ratio = b[key] / a[key] if a[key] else float("nan")
        print(f"[compare] {key:>10}: live {a[key]:.3f}  forecast {b[key]:.3f}  "
              f"forecast/live {ratio:.3f}")
    print(f"[compare] one level: live {lwall:.0f} s wall, forecast {fwall:.1f} s wall")
    quick = [corpus, "--profile", profile, "--seed", "3", "--wait", "cap:10"]
    live, _, _, _ = replay(quick)
    fc, _, _, _ = replay([*quick, "--forecast"])
    for lt, ft in zip(live["tiers"], fc["tiers"], strict=True):  # type: ignore[call-overload]
        print(f"[compare] tier {lt['floor']:g} tok/s: live {lt['agents']} agents, forecast "
              f"{ft['agents']} agents (quick search, 25 % resolution)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["speed", "search", "compare"])
    p.add_argument("--agents", type=int, nargs="*")
    p.add_argument("--corpus", default=str(ROOT / "corpus" / "reference" / "example.zst"))
    p.add_argument("--profile", default="h100")
    p.add_argument("--baseline", type=Path,
                   help="speed/search: another checkout (e.g. a git worktree of an older "
                        "commit) to run the same forecast in, back to back, for a CPU ratio")
    args = p.parse_args()
    if args.mode == "speed":
        speed(args.agents or [100, 1000, 10000], args.baseline)
    elif args.mode == "search":
        search(args.baseline)
    else:
        compare(args.corpus, (args.agents or [8])[0], args.profile)


if __name__ == "__main__":
    main()
