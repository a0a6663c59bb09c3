"""Benchmark: `stats describe` and `stats compare` on a synthetic agentic corpus, against a
plain-Python implementation of the same statistics, measured in the same run.

    uv run python benchmarks/bench_stats.py               # 1M turns (several minutes)
    uv run python benchmarks/bench_stats.py --turns 100000

The synthetic corpus looks like coding-agent traffic: a few shared system prompts (~15K tokens),
contexts growing by ~1K tokens a turn up to 131K (then compacted back to the prompt plus a
summary), 10 % sub-agents, tool waits around 1 s, sessions arriving as a Poisson process.

The plain-Python baseline is too slow to run on the whole corpus (its LRU touches every block
of every request: hundreds of millions of touches), so both implementations are timed on the
same prefix of sessions (`--baseline-turns`) and their ratio printed; the full corpus is
then described and compared with the vectorized implementation alone for time and peak memory.
Peak memory is the process's maximum RSS (resource.getrusage), read after each phase, and
the growth over the RSS before the phase.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import random
import resource
import tempfile
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from pathlib import Path

from corpus import Header, Reader, Turn, Writer

BLOCK = 64


def synthesize(path: Path, turns: int, seed: int = 7) -> int:
    """Write a corpus of about `turns` turns to `path`; returns the number of turns written."""
    rng = random.Random(seed)
    next_id = 0

    def fresh(n: int) -> list[int]:
        nonlocal next_id
        out = list(range(next_id, next_id + n))
        next_id += n
        return out

    prompts = [fresh(rng.randint(180, 280)) for _ in range(8)]
    written = 0
    clock = 0.0
    with Writer(path, Header(domain="coding", block_size=BLOCK), keys=False, level=3) as w:
        while written < turns:
            clock += rng.expovariate(1 / 6.0)
            parent = None
            for sub in range(2 if rng.random() < 0.1 else 1):
                sid = w.open_session(start=clock + sub * 30.0, parent=parent, agent="synthetic")
                parent = sid if parent is None else parent
                prompt = prompts[rng.randrange(len(prompts))]
                blocks = list(prompt)
                tokens = len(blocks) * BLOCK - rng.randint(0, BLOCK - 1)
                t = 0.0
                n = min(200, max(1, int(rng.lognormvariate(3.6, 0.8))))
                for k in range(n):
                    if k:
                        add = int(rng.lognormvariate(6.6, 1.0)) + 20
                        if tokens + add > 131_000:  # compaction: prompt + summary
                            blocks = list(prompt)
                            tokens = len(prompt) * BLOCK
                            add = 2_000
                        # the previous partial block is rewritten, so it is new again
                        full = tokens // BLOCK
                        del blocks[full:]
                        tokens += add
                        blocks += fresh(math.ceil(tokens / BLOCK) - full)
                    out = int(rng.lognormvariate(5.0, 1.2)) + 1
                    after = "start" if not k else ("user" if rng.random() < 0.05 else "tool")
                    wait = (
                        0.0
                        if not k
                        else (
                            rng.lognormvariate(3.0, 1.0)
                            if after == "user"
                            else rng.lognormvariate(0, 0.8)
                        )
                    )
                    ttft = 0.2 + tokens / 40_000
                    duration = ttft + out / 60.0
                    t += wait
                    w.add_turn(
                        sid,
                        Turn(
                            t=t,
                            input=tokens,
                            output=out,
                            wait=wait,
                            after=after,
                            ttft=ttft,
                            duration=duration,
                            stop="tool_use",
                        ),
                        blocks,
                    )
                    t += duration
                    written += 1
                w.close_session(sid)
    return written


# -- plain-Python baseline: the same statistics, one Python object per turn -----------------


def _pct(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return math.nan
    pos = q / 100 * (len(sorted_vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _summ(vals: list[float]) -> dict[str, float]:
    s = sorted(v for v in vals if v == v)
    out = {f"p{q}": _pct(s, q) for q in (10, 25, 50, 75, 90, 95, 99)}
    out["mean"] = sum(s) / len(s) if s else math.nan
    return out


def _ks(a: list[float], b: list[float]) -> float:
    a, b = sorted(a), sorted(b)
    d = 0.0
    for x in a + b:
        d = max(d, abs(bisect.bisect_right(a, x) / len(a) - bisect.bisect_right(b, x) / len(b)))
    return d


def naive_describe(path: Path, capacities: list[int]) -> dict[str, object]:
    """Per-turn and per-session summaries, infinite-cache hit ratio and LRU hit ratios at
    `capacities` (tokens), touching every block of every request."""
    reader = Reader(path)
    bs = reader.header.block_size
    per: dict[str, list[float]] = defaultdict(list)
    reqs = []
    for s in reader.sessions():
        last_t = -math.inf
        for k, (turn, full) in enumerate(zip(s.turns, s.prefixes(), strict=True)):
            reused = min(turn.input, turn.reuse * bs)
            per["input"].append(turn.input)
            per["output"].append(turn.output)
            per["new"].append(turn.input - reused)
            per["reuse"].append(reused / turn.input if turn.input else math.nan)
            per[f"wait_{turn.after}"].append(turn.wait)
            if turn.ttft is not None:
                per["ttft"].append(turn.ttft)
            last_t = max(last_t, turn.t)
            reqs.append((s.start + last_t, s.id, k, turn.input, full))
        per["turns"].append(len(s.turns))
        if s.turns:
            per["final"].append(s.turns[-1].input + s.turns[-1].output)
    reqs.sort(key=lambda r: (r[0], r[1], r[2]))
    total = sum(r[3] for r in reqs)
    seen: set[int] = set()
    hit = 0
    for _, _, _, inp, full in reqs:
        for j, b in enumerate(full):
            if b in seen:
                hit += min(bs, max(0, inp - j * bs))
        seen.update(full)
    lru_ratio = {}
    for cap in capacities:
        cache: OrderedDict[int, None] = OrderedDict()
        blocks = cap // bs
        h = 0
        for _, _, _, inp, full in reqs:
            for j, b in enumerate(full):
                if b in cache:
                    h += min(bs, max(0, inp - j * bs))
                    cache.move_to_end(b)
                else:
                    cache[b] = None
                    if len(cache) > blocks:
                        cache.popitem(last=False)
        lru_ratio[cap] = h / total
    return {
        "summaries": {k: _summ(v) for k, v in per.items()},
        "prefix_hit_ratio": hit / total,
        "lru": lru_ratio,
        "per": per,
    }


def naive_compare(a: dict[str, object], b: dict[str, object]) -> dict[str, float]:
    pa, pb = a["per"], b["per"]
    assert isinstance(pa, dict)
    assert isinstance(pb, dict)
    return {k: _ks(pa[k], pb[k]) for k in ("input", "output", "new", "turns") if pa[k] and pb[k]}


# -- the run ----------------------------------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prefix_corpus(src: Path, dst: Path, turns: int) -> None:
    """Copy whole sessions of `src` into `dst` until about `turns` turns."""
    n = 0
    with Writer(dst, Reader(src).header, keys=False, level=3) as w:
        for s in Reader(src).sessions():
            if n >= turns:
                break
            sid = w.open_session(start=s.start, parent=s.parent, agent=s.agent)
            for turn, full in zip(s.turns, s.prefixes(), strict=True):
                w.add_turn(sid, turn, full)
            w.close_session(sid)
            n += len(s.turns)


def main() -> None:
    import stats

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=1_000_000)
    ap.add_argument("--baseline-turns", type=int, default=20_000)
    ap.add_argument("--dir", type=Path, default=None, help="keep corpora here (reused if present)")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    root = args.dir or Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    big = root / f"synthetic-{args.turns}.zst"
    if not big.exists():
        t0 = time.perf_counter()
        n = synthesize(big, args.turns)
        print(
            f"synthesized {n:,} turns in {time.perf_counter() - t0:.1f} s "
            f"({os.path.getsize(big) / 1e6:.1f} MB)"
        )
    small = root / f"synthetic-{args.turns}-head{args.baseline_turns}.zst"
    if not small.exists():
        _prefix_corpus(big, small, args.baseline_turns)

    caps = [256 * 1024, 4 * 1024 * 1024]
    # Same statistics, same prefix corpus: vectorized vs plain Python. CPU time is reported
    # beside wall time because a shared machine's load skews wall time (both are 1 thread).
    (fast, fast_cmp), w_fast, c_fast = _timed(
        lambda: (stats.describe(small, cache_tokens=caps[0]), stats.compare(small, small))
    )
    slow, w_slow, c_slow = _timed(lambda: _naive(small, caps))
    agree = abs(fast["prefix_hit_ratio"] - slow["prefix_hit_ratio"]) < 1e-9
    lru = stats.profile(small).lru
    lru_agree = all(abs(lru.ratio(c) - slow["lru"][c]) < 1e-9 for c in caps)
    n_small = fast["counts"]["turns"]
    print(
        f"baseline corpus ({n_small:,} turns), describe + compare: plain Python "
        f"{w_slow:.2f} s wall / {c_slow:.2f} s CPU, vectorized {w_fast:.2f} s / {c_fast:.2f} s "
        f"-> speedup {w_slow / w_fast:.1f}x wall, {c_slow / c_fast:.1f}x CPU (target >= 5x); "
        f"results agree: hit ratio {agree}, LRU {lru_agree}; self-compare {fast_cmp['verdict']}"
    )

    # Whole corpus: vectorized only; time, peak RSS.
    rss0 = _rss_mb()
    desc, w_desc, c_desc = _timed(lambda: stats.describe(big, cache_tokens=caps[1]))
    rss1 = _rss_mb()
    cmp, w_cmp, c_cmp = _timed(lambda: stats.compare(big, reference=small))
    rss2 = _rss_mb()
    turns = desc["counts"]["turns"]
    slow_cpu = c_slow / max(1, n_small) * turns
    print(
        f"full corpus: {turns:,} turns, {desc['counts']['sessions']:,} sessions, "
        f"prefix hit ratio {desc['prefix_hit_ratio']:.4f}, "
        f"LRU@{caps[1] // 1024}Ki tokens {desc['lru']['hit_ratio']:.4f}"
    )
    print(
        f"describe {w_desc:.1f} s wall / {c_desc:.1f} s CPU, compare {w_cmp:.1f} s / "
        f"{c_cmp:.1f} s; plain Python extrapolated linearly in turns: {slow_cpu:.0f} s CPU "
        f"-> speedup ~{slow_cpu / c_desc:.0f}x CPU"
    )
    print(
        f"peak RSS {rss2:.0f} MB (before {rss0:.0f} MB; after describe {rss1:.0f} MB; "
        f"target <= 2048 MB); compare verdict {cmp['verdict']}"
    )


def _naive(path: Path, caps: list[int]) -> dict[str, object]:
    out = naive_describe(path, caps)
    naive_compare(out, out)
    return out


def _timed[T](fn: Callable[[], T]) -> tuple[T, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


if __name__ == "__main__":
    main()
