"""Corpus format benchmarks; prints ratios measured in this run, never asserts.

(a) read speed: every turn via `Reader.table()` vs the same turns decoded from Mooncake-style
    JSONL (full `hash_ids` per line, as Mooncake/AIPerf traces carry them) with msgspec.json;
(b) size: the bundled reference corpus vs its source JSON under `zstd -19 --long=27`, and the
    synthetic corpus vs its JSONL under the same;
(c) memory: peak traced allocation of the streaming session reader as the corpus grows.

    uv run python benchmarks/bench_corpus.py [--turns 200000] [--skip-size]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path

import msgspec

from corpus import Header, Reader, Turn, Writer

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "corpus" / "reference" / "claude-code.zst"
TRACES = Path("/tmp/data/kv-cache-tester/traces")
TRACES_ARCHIVE = Path("/work/shared/data/kv-cache-tester.tar.zst")


class Row(msgspec.Struct):
    """One Mooncake trace line with the session extension AIPerf and Dynamo read."""

    timestamp: int
    input_length: int
    output_length: int
    hash_ids: list[int]
    session_id: int = 0
    delay: int = 0


# -- synthetic workload -----------------------------------------------------------------------


def synthesize(corpus: Path, jsonl: Path | None, turns: int, block_size: int, seed: int = 0) -> int:
    """Agent-like sessions (a shared system prompt per agent family, contexts that grow turn
    by turn from ~10K towards ~150K tokens, sub-agents), written both as a corpus and as
    Mooncake JSONL with full hash_ids (unless `jsonl` is None). Returns the number of
    sessions."""
    rng = random.Random(seed)
    next_id = 0

    def fresh(n: int) -> list[int]:
        nonlocal next_id
        out = list(range(next_id, next_id + n))
        next_id += n
        return out

    systems = [fresh(rng.randint(8_000, 20_000) // block_size) for _ in range(4)]
    encode = msgspec.json.Encoder().encode
    written = sessions = 0
    clock = 0.0
    out = open(jsonl, "wb") if jsonl is not None else None  # noqa: SIM115 - closed below
    with Writer(corpus, Header(domain="coding", block_size=block_size), keys=False) as w:
        while written < turns:
            clock += rng.expovariate(1 / 30.0)
            sid = w.open_session(start=clock, model="claude-sonnet-4-5", agent="claude-code")
            sessions += 1
            context = list(rng.choice(systems))
            tokens = len(context) * block_size
            t = 0.0
            for k in range(min(rng.randint(5, 120), turns - written)):
                # a partial tail block changes when tokens are appended; whole blocks stay
                keep = len(context) if tokens % block_size == 0 else len(context) - 1
                tokens = min(tokens + rng.randint(200, 4_000), 190_000)
                context = context[:keep] + fresh(-(-tokens // block_size) - keep)
                output = int(rng.lognormvariate(5, 1.2))
                wait = rng.expovariate(1.0)
                w.add_turn(
                    sid,
                    Turn(
                        t=t,
                        input=tokens,
                        output=output,
                        wait=wait,
                        after="tool" if k else "start",
                        tool_calls=("Bash",) if k % 2 else (),
                        ttft=0.8,
                        duration=output / 60,
                    ),
                    context,
                )
                if out is not None:
                    ms = int((clock + t) * 1000)
                    out.write(encode(Row(ms, tokens, output, context, sid, int(wait * 1000))))
                    out.write(b"\n")
                written += 1
                t += output / 60 + wait
            w.close_session(sid)
    if out is not None:
        out.close()
    return sessions


# -- measurements -----------------------------------------------------------------------------


def best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_read(corpus: Path, jsonl: Path, zjsonl: Path) -> None:
    decoder = msgspec.json.Decoder(Row)

    def table() -> None:
        Reader(corpus).table()

    def from_jsonl() -> None:
        decoder.decode_lines(jsonl.read_bytes())

    def from_zst_jsonl() -> None:
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(zjsonl.read_bytes()) as r:
            decoder.decode_lines(r.read())

    n = Reader(corpus).table().n_turns
    t_table = best(table)
    t_jsonl = best(from_jsonl)
    t_zjsonl = best(from_zst_jsonl)
    print(f"(a) read all {n:,} turns")
    print(f"    Reader.table()                         1.0×  ({n / t_table / 1e6:.1f} M turns/s)")
    print(f"    msgspec.json JSONL, full hash_ids   {t_jsonl / t_table:7.1f}× slower")
    print(f"    msgspec.json JSONL.zst              {t_zjsonl / t_table:7.1f}× slower")
    print("    target ≥ 10×")


def zstd19(src: Path, dst: Path) -> None:
    subprocess.run(
        ["zstd", "-q", "-f", "-19", "--long=27", "-T0", str(src), "-o", str(dst)], check=True
    )


def bench_size(corpus: Path, zjsonl: Path, work: Path) -> None:
    print("(b) size")
    print(
        f"    synthetic: corpus {corpus.stat().st_size / 1e6:.2f} MB vs JSONL zstd -19 --long=27 "
        f"{zjsonl.stat().st_size / 1e6:.2f} MB = "
        f"{corpus.stat().st_size / zjsonl.stat().st_size:.3f}×"
    )
    bench_reference_size(work)


def bench_reference_size(work: Path) -> None:
    if not REFERENCE.exists():
        print(f"    reference: skipped ({REFERENCE.relative_to(ROOT)} not built yet)")
        return
    traces = TRACES
    if not traces.is_dir():
        if not TRACES_ARCHIVE.exists() or shutil.which("zstd") is None:
            print("    reference: skipped (no kv-cache-tester source traces)")
            return
        unpacked = work / "kv"
        unpacked.mkdir()
        subprocess.run(
            f"zstd -d --long=27 -c {TRACES_ARCHIVE} | tar xf - -C {unpacked}",
            shell=True,
            check=True,
        )
        found = [p for p in unpacked.rglob("traces") if p.is_dir()]
        if not found:
            print("    reference: skipped (archive has no traces/ folder)")
            return
        traces = found[0]
    tar = work / "traces.tar"
    with tarfile.open(tar, "w") as tf:
        for p in sorted(traces.glob("*.json")):
            tf.add(p, arcname=p.name)
    ztar = work / "traces.tar.zst"
    zstd19(tar, ztar)
    ref, src = REFERENCE.stat().st_size, ztar.stat().st_size
    print(
        f"    reference: {REFERENCE.name} {ref / 1e6:.2f} MB vs source JSON zstd -19 --long=27 "
        f"{src / 1e6:.2f} MB = {ref / src:.3f}× (target ≤ 0.5×)"
    )


def bench_memory(work: Path, block_size: int = 64) -> None:
    print(
        f"(c) peak traced memory while streaming sessions (Reader.sessions, {block_size}-token "
        "blocks, default frames)"
    )
    base = None
    for turns in (25_000, 100_000, 400_000):
        path = work / f"mem{turns}.zst"
        sessions = synthesize(path, None, turns, block_size, seed=1)
        tracemalloc.start()
        count = 0
        for s in Reader(path).sessions():
            count += len(s.turns)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        base = base or peak
        print(
            f"    {sessions:6,} sessions {count:8,} turns  "
            f"{path.stat().st_size / 1e6:7.2f} MB file  peak {peak / 1e6:6.2f} MB "
            f"({peak / base:.2f}× the smallest)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--turns", type=int, default=200_000)
    ap.add_argument(
        "--block-size", type=int, default=512, help="tokens per block for (a) and (b) (Mooncake's)"
    )
    ap.add_argument("--skip-size", action="store_true", help="skip the slow zstd -19 runs")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus, jsonl = work / "synthetic.zst", work / "trace.jsonl"
        start = time.perf_counter()
        sessions = synthesize(corpus, jsonl, args.turns, args.block_size)
        ids = sum(1 for _ in jsonl.open("rb"))
        print(
            f"synthetic workload: {sessions:,} sessions, {ids:,} turns, {args.block_size}-token "
            f"blocks; JSONL {jsonl.stat().st_size / 1e6:.1f} MB, corpus "
            f"{corpus.stat().st_size / 1e6:.2f} MB (built in {time.perf_counter() - start:.0f} s)"
        )
        zjsonl = work / "trace.jsonl.zst"
        if args.skip_size:
            subprocess.run(["zstd", "-q", "-3", str(jsonl), "-o", str(zjsonl)], check=True)
        else:
            zstd19(jsonl, zjsonl)
        bench_read(corpus, jsonl, zjsonl)
        if not args.skip_size:
            bench_size(corpus, zjsonl, work)
        if not args.skip_memory:
            bench_memory(work)


if __name__ == "__main__":
    main()
