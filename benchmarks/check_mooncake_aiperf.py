"""Replay a `corpus export mooncake` file with AIPerf against `replay serve` and compare the input
the server counted with the recording (the export is right when they agree within 1 %).

AIPerf is not a dependency: install it in a venv of its own and pass its `aiperf` binary. It
needs a tiktoken cache that holds cl100k_base (see /work/shared/PEERS.md or AIPerf's docs);
pass its folder with --tiktoken-cache. Nothing is downloaded.

    uv run python benchmarks/check_mooncake_aiperf.py --aiperf /venvs/aiperf/bin/aiperf \\
        --tiktoken-cache ./tiktoken-cache corpus/reference/swe-bench.zst --sessions 6

Compares, request by request, the input the server reported in its usage (AIPerf's
`usage_prompt_tokens`) with the recorded input of that turn, over every (conversation, turn)
AIPerf sent (AIPerf may replay a conversation more than once, or stop before its last turns,
when the request count and concurrency don't divide evenly; a restarted session's later turns
are the conversations `sN.1`, ...). Prints the totals and their ratio, and how AIPerf's gaps
between a conversation's requests compare with the recorded waits. The main run drops the
recorded delays with `--inter-turn-delay-cap-seconds 0` (gaps ≈ 0; AIPerf 0.13's
`--ignore-trace-delays` has no effect on `mooncake_trace`, whose delays it honours); `--delays
SCALE` replays a copy of the sample with every wait scaled by SCALE and the delays honoured.
`--separator-tokens` (default 6, AIPerf's `<|endoftext|>` block separator counted as text by
`replay serve`) is the export option; `--also-uncompensated` adds a run with 0, `--also-whole`
one of `--whole-requests` (each turn's whole context, which a session replayer sends on top of
the conversation).

Measured (6 swe-bench sessions, seed 3, 338 turns, concurrency 4, instant engine):
- per-turn rows, --separator-tokens 6: 336 requests, server 5,053,580 vs recorded 5,044,909:
  1.0017; delays dropped: gaps median 12 ms.
- --separator-tokens 0: 1.0121. Before the restarts (clamped shrunk turns): 1.0573.
- --whole-requests: 19.34 (AIPerf sends every row after the conversation so far).
- --delays 0.05: 1.0018; gap − recorded wait median +9 ms, 5–95 % +1…+30 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from corpus import Reader, Turn, Writer, exporters, ops


def _serve() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay", "serve", "--port", "0", "--profile", "instant"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    m = re.search(r"http://[0-9.]+:[0-9]+", first)
    if not m:
        proc.kill()
        raise SystemExit(f"replay serve did not start: {first!r}")
    return proc, m.group(0)


Sent = dict[tuple[str, int], tuple[int, int, int]]


def _run(
    aiperf: str, cache: str, trace: Path, url: str, turns: int, out: Path, delays: bool = False
) -> Sent:
    """(conversation, turn) -> (input tokens the server reported, request start and end ns)."""
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=cache, HF_HUB_OFFLINE="1")
    cmd = [
        aiperf, "profile", "--model", "m", "--url", url, "--endpoint-type", "chat",
        "--streaming", "--tokenizer", "cl100k_base", "--input-file", str(trace),
        "--custom-dataset-type", "mooncake_trace", "--isl-block-size", "512",
        "--no-fixed-schedule", "--concurrency", "4", "--request-count", str(turns),
        "--extra-inputs", "ignore_eos:true", "--artifact-dir", str(out), "--ui", "none",
    ]  # fmt: skip
    if not delays:  # --ignore-trace-delays: no effect on AIPerf 0.13's mooncake_trace loader
        cmd += ["--inter-turn-delay-cap-seconds", "0"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"aiperf failed ({done.returncode}):\n{done.stdout[-3000:]}")
    print(f"  aiperf ran {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    seen: Sent = {}
    for line in (out / "profile_export.jsonl").read_text().splitlines():
        rec = json.loads(line)
        meta, value = rec["metadata"], rec["metrics"].get("usage_prompt_tokens", {}).get("value")
        if value is not None:
            key = (meta["conversation_id"], meta["turn_index"])
            seen[key] = (int(value), meta["request_start_ns"], meta["request_end_ns"])
    return seen


def _validate(aiperf: str, cache: str, trace: Path) -> None:
    """AIPerf's own check of a Mooncake trace (`aiperf validate mooncake-trace`)."""
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=cache, HF_HUB_OFFLINE="1")
    cmd = [aiperf, "validate", "mooncake-trace", "--input", str(trace)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    verdict = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode:
        raise SystemExit(f"aiperf validate refused {trace}:\n{done.stdout[-2000:]}")
    print(f"  aiperf validate: {verdict}", file=sys.stderr)


def _gaps(sent: Sent, waits: dict[Any, float]) -> str:
    """How AIPerf's gaps between a conversation's requests compare with the recorded waits."""
    pairs = []
    for (conv, k), (_, start, _) in sent.items():
        before = sent.get((conv, k - 1))
        if k and before is not None and start > before[2]:  # not a conversation sent twice
            pairs.append(((start - before[2]) / 1e9, waits[(conv, k)]))
    if not pairs:
        return "no consecutive requests"
    gaps = sorted(g for g, _ in pairs)
    waited = sorted(w for _, w in pairs)
    errors = sorted(g - w for g, w in pairs)

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000

    return (
        f"{len(pairs)} gaps: median {pct(gaps, 0.5):.0f} ms (recorded waits "
        f"{sum(w for _, w in pairs):.1f} s in all, median {pct(waited, 0.5):.0f} ms); "
        f"gap − wait median {pct(errors, 0.5):+.0f} ms, 5–95 % {pct(errors, 0.05):+.0f}…"
        f"{pct(errors, 0.95):+.0f} ms"
    )


def _scaled(src: Path, out: Path, scale: float) -> None:
    """`src` with every wait, turn time and session start multiplied by `scale`."""
    reader = Reader(src)
    ids: dict[int, int] = {}
    with Writer(out, reader.header, keys=False) as w:
        for sess in sorted(reader.sessions(), key=lambda s: (s.start, s.id)):
            parent = None if sess.parent is None else ids.get(sess.parent)
            sid = ids[sess.id] = w.open_session(start=sess.start * scale, parent=parent)
            for turn, blocks in zip(sess.turns, sess.prefixes(), strict=True):
                w.add_turn(sid, replace(turn, t=turn.t * scale, wait=turn.wait * scale), blocks)
            w.close_session(sid)


def _recorded(trace: Path, sessions: list[Any]) -> dict[Any, Turn]:
    """(conversation, turn index) -> the recorded turn. Rows follow the corpus's turns one for
    one (sessions in start order); a restarted session's later turns are another conversation
    (`sN.1`, ...)."""
    turns = [t for s in sorted(sessions, key=lambda s: (s.start, s.id)) if s.turns for t in s.turns]
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(rows) == len(turns), (len(rows), len(turns))
    seen: dict[str, int] = {}
    out: dict[Any, Turn] = {}
    for row, turn in zip(rows, turns, strict=True):
        k = seen.get(row["session_id"], 0)
        seen[row["session_id"]] = k + 1
        out[(row["session_id"], k)] = turn
    return out


def _report(label: str, n: int, turns: int, recorded: dict[Any, Turn], sent: Sent) -> None:
    mine = sum(recorded[key].input for key in sent)
    got = sum(value[0] for value in sent.values())
    print(
        f"{label}: {n} sessions; {len(sent)} of {turns} turns sent; recorded input of those "
        f"{mine:,}, server counted {got:,}: ratio {got / mine:.4f}\n"
        f"  {_gaps(sent, {key: turn.wait for key, turn in recorded.items()})}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--aiperf", required=True)
    ap.add_argument("--tiktoken-cache", required=True)
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument(
        "--separator-tokens",
        type=int,
        default=6,
        help="export option (6: AIPerf's <|endoftext|> block separator, 7 cl100k tokens of text)",
    )
    ap.add_argument(
        "--also-uncompensated", action="store_true", help="also replay --separator-tokens 0"
    )
    ap.add_argument("--also-whole", action="store_true", help="also replay --whole-requests")
    ap.add_argument(
        "--delays",
        type=float,
        metavar="SCALE",
        help="also replay with the recorded delays honoured, waits scaled by SCALE (e.g. 0.05)",
    )
    ap.add_argument("--keep", type=Path, help="keep the export and AIPerf's artifacts here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        sample = work / "sample.zst"
        ops.sample(args.corpus, sample, n=args.sessions, seed=args.seed)
        sessions = list(Reader(sample).sessions())
        turns = sum(len(s.turns) for s in sessions)
        proc, url = _serve()
        try:
            sep = args.separator_tokens
            runs = [(f"per-turn rows, --separator-tokens {sep}", False, sep)]
            if args.also_uncompensated:
                runs.append(("per-turn rows, --separator-tokens 0", False, 0))
            if args.also_whole:
                runs.append(("--whole-requests", True, 0))
            for k, (label, whole, separator) in enumerate(runs):
                trace = work / f"trace-{k}.jsonl"
                report = exporters.run(
                    "mooncake", sample, trace, block_size=512, whole=whole, separator=separator
                )
                for line in report.warnings:
                    print(f"  export: {line}", file=sys.stderr)
                _validate(args.aiperf, args.tiktoken_cache, trace)
                recorded = _recorded(trace, sessions)
                sent = _run(args.aiperf, args.tiktoken_cache, trace, url, turns, work / f"run-{k}")
                _report(label, len(sessions), turns, recorded, sent)
            if args.delays is not None:
                scaled = work / "scaled.zst"
                _scaled(sample, scaled, args.delays)
                trace = work / "trace-delays.jsonl"
                exporters.run("mooncake", scaled, trace, block_size=512, separator=sep)
                recorded = _recorded(trace, list(Reader(scaled).sessions()))
                sent = _run(
                    args.aiperf, args.tiktoken_cache, trace, url, turns, work / "run-delays", True
                )
                label = f"delays honoured (waits × {args.delays:g}), --separator-tokens {sep}"
                _report(label, len(sessions), turns, recorded, sent)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
