"""Rebuild the bundled reference corpora from the public recordings (reproducible).

    uv run python -m corpus.reference.build --data ../shared/data --out corpus/reference \
        --agentperf /tmp/apl/agentperf_local-0.3.4-py3-none-any.whl

`--data` holds the `*.tar.zst` archives described in its README.md; they are unpacked into a
temporary folder and imported with this package's own importers, without `.keys` sidecars (the
shipped corpora can't be linked back to content). `--agentperf` is the agentperf-local wheel
(`pip download --no-deps agentperf-local`) or its unpacked folder; without it that corpus is
left as it is. `example` is a seeded sample of `claude-code`-style sessions small enough for a
quick replay. SOURCES.md is rewritten from the files present.
"""

from __future__ import annotations

import argparse
import random
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import zstandard

from corpus import importers, synth
from corpus.keys import sidecar
from corpus.reader import Reader
from corpus.reference import NAMES

EXAMPLE_SEED = 2024
EXAMPLE_SESSIONS = 32
EXAMPLE_TURNS = (6, 40)  # requests per trace
EXAMPLE_PEAK_INPUT = 64_000  # tokens
CODING_SESSIONS = 200
CODING_SEED = 0


@dataclass(frozen=True)
class Spec:
    name: str
    archive: str | None  # the shared/data archive it needs
    fmt: str
    domain: str
    license: str
    origin: str  # where the recording comes from
    what: str


SPECS = {
    s.name: s
    for s in (
        Spec(
            "claude-code",
            "kv-cache-tester.tar.zst",
            "weka",
            "coding",
            "Apache-2.0",
            "callanjfox/kv-cache-tester `traces/` (WEKA, captured with claude-code-proxy)",
            "every Claude Code session and sub-agent of the kv-cache-tester traces",
        ),
        Spec(
            "swe-bench",
            "mini-swe-agent-gemini3.tar.zst",
            "mini-swe-agent",
            "coding",
            "MIT",
            "gruckion/mini-swe-agent `trajs/` (Gemini 3 Pro on SWE-bench Verified)",
            "all 500 mini-swe-agent trajectories",
        ),
        Spec(
            "agentperf-local",
            None,
            "agentperf-local",
            "coding",
            "Apache-2.0",
            "PyPI `agentperf-local` (Artificial Analysis), replay `agentperf-default-v1`",
            "AA's own recorded AgentPerf default traces (SWE-bench and PinchBench/OpenClaw tasks)",
        ),
        Spec(
            "coding",
            None,
            "synth",
            "coding",
            "Apache-2.0",
            "`corpus synth --like coding`: AA-AgentPerf's published figures and the "
            "`agentperf-local` recordings above",
            f"the reference coding workload, {CODING_SESSIONS} synthetic sessions, seed "
            f"{CODING_SEED}",
        ),
        Spec(
            "support",
            "tau-bench-airline.tar.zst",
            "conversations",
            "support",
            "MIT",
            "sierra-research/tau-bench `historical_trajectories/gpt-4o-airline.json`",
            "200 τ-bench airline customer-support trajectories (GPT-4o, tool calls); no timings",
        ),
        Spec(
            "example",
            "kv-cache-tester.tar.zst",
            "weka",
            "coding",
            "Apache-2.0",
            "callanjfox/kv-cache-tester `traces/`, seeded sample",
            f"{EXAMPLE_SESSIONS} Claude Code sessions without sub-agents, "
            f"{EXAMPLE_TURNS[0]}–{EXAMPLE_TURNS[1]} requests, peak input ≤ {EXAMPLE_PEAK_INPUT:,} "
            f"tokens, sampled with seed {EXAMPLE_SEED}: the quick-start corpus",
        ),
    )
}


def unpack(archive: Path, into: Path) -> None:
    """Extract a zstd-compressed tar (long-distance matching windows up to 2 GiB)."""
    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
    with open(archive, "rb") as f, dctx.stream_reader(f) as stream:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            tar.extractall(into, filter="data")


def find(root: Path, pattern: str) -> Path:
    found = sorted(root.rglob(pattern))
    if not found:
        raise SystemExit(f"error: {root}: nothing matches {pattern}; is this the right archive?")
    return found[0]


def example_traces(traces: Path) -> list[Path]:
    """The seeded quick-start sample of trace files."""
    eligible: list[Path] = []
    for f in sorted(traces.glob("*.json")):
        reqs = msgspec.json.decode(f.read_bytes())["requests"]
        if any(r.get("type") == "subagent" for r in reqs):
            continue
        if (
            EXAMPLE_TURNS[0] <= len(reqs) <= EXAMPLE_TURNS[1]
            and max(r["in"] for r in reqs) <= EXAMPLE_PEAK_INPUT
        ):
            eligible.append(f)
    rng = random.Random(EXAMPLE_SEED)
    return sorted(rng.sample(eligible, min(EXAMPLE_SESSIONS, len(eligible))))


def sources(spec: Spec, root: Path, agentperf: Path | None) -> list[Path]:
    if spec.name == "claude-code":
        return [find(root, "traces")]
    if spec.name == "example":
        return example_traces(find(root, "traces"))
    if spec.name == "swe-bench":
        return [find(root, "trajs")]
    if spec.name == "support":
        return [find(root, "gpt-4o-airline.json")]
    assert agentperf is not None
    return [agentperf]


def build_coding(out: Path) -> None:
    """The synthetic reference coding workload, fitted to the `agentperf-local` corpus in
    `out` (built first)."""
    target = out / "coding.zst"
    tmp = out / ".coding.zst.part"
    tmp.unlink(missing_ok=True)
    made = synth.generate(
        synth.coding(out / "agentperf-local.zst"), tmp, n=CODING_SESSIONS, seed=CODING_SEED
    )
    tmp.replace(target)
    print(f"coding: {made.sessions} sessions, {made.turns} turns, {target.stat().st_size:,} bytes")


def build(spec: Spec, root: Path, out: Path, agentperf: Path | None, level: int) -> None:
    if spec.fmt == "synth":
        build_coding(out)
        return
    target = out / f"{spec.name}.zst"
    tmp = out / f".{spec.name}.zst.part"
    tmp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    report = importers.run(
        spec.fmt,
        sources(spec, root, agentperf),
        tmp,
        domain=spec.domain,
        level=level,
        license=spec.license,
        notes=f"reference corpus '{spec.name}': {spec.what}; from {spec.origin}",
        keys=False,
    )
    tmp.replace(target)
    sidecar(target).unlink(missing_ok=True)
    print(
        f"{spec.name}: {report.sessions} sessions, {report.turns} turns, "
        f"{target.stat().st_size:,} bytes in {time.perf_counter() - t0:.0f} s"
        + (f"; {len(report.skipped)} records skipped" if report.skipped else "")
    )
    for line in report.skipped[:5]:
        print(f"  skipped {line}")


def _pct(a: np.ndarray, q: float) -> str:
    return f"{int(np.percentile(a, q)):,}" if a.size else "-"


def sources_md(out: Path, command: str, data: Path | None) -> str:
    lines = [
        "# Reference corpora: sources",
        "",
        "Built from public recordings with this package's own importers by",
        "`corpus/reference/build.py`, without `.keys` sidecars (nothing links back to text):",
        "",
        "```",
        command,
        "```",
        "",
        "The archives are the ones described in the project's shared `data/README.md` (tar streams",
        "compressed with zstd); `agentperf-local` comes from the wheel on the package index",
        "(`pip download --no-deps agentperf-local`). Block ids, counts and timings are",
        "reproducible; tool-name pseudonyms use a fresh key on every build.",
        "",
        "| corpus | source | licence | importer | sessions | turns | input p50 / p95 "
        "| output p50 | bytes | source archive bytes |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    total = 0
    for name in NAMES:
        path = out / f"{name}.zst"
        spec = SPECS[name]
        if not path.exists():
            lines.append(f"| {name} | {spec.origin} | {spec.license} | {spec.fmt} | not built |")
            continue
        table = Reader(path).table()
        inp, outp = table.turns["input"], table.turns["output"]
        size = path.stat().st_size
        total += size
        archive = data / spec.archive if data is not None and spec.archive else None
        src = f"{archive.stat().st_size:,}" if archive is not None and archive.exists() else "-"
        lines.append(
            f"| `{name}.zst` | {spec.origin} | {spec.license} | `{spec.fmt}` | "
            f"{table.n_sessions:,} | {table.n_turns:,} | {_pct(inp, 50)} / {_pct(inp, 95)} | "
            f"{_pct(outp, 50)} | {size:,} | {src} |"
        )
        notes.append(f"- `{name}`: {table.header.notes}")
    lines += ["", f"Total: {total:,} bytes.", "", "Header notes:", "", *notes, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of the *.tar.zst archives")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--agentperf", type=Path, help="agentperf-local wheel or unpacked folder")
    ap.add_argument("--only", nargs="*", choices=NAMES, help="build only these corpora")
    ap.add_argument("--level", type=int, default=19, help="zstd level")
    args = ap.parse_args(argv)
    names = list(args.only or NAMES)
    if "agentperf-local" in names and args.agentperf is None:
        print("agentperf-local: skipped (no --agentperf wheel or folder given)")
        names.remove("agentperf-local")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="agentload-ref-") as tmp:
        root = Path(tmp)
        unpacked: set[str] = set()
        for name in names:
            spec = SPECS[name]
            if spec.archive and spec.archive not in unpacked:
                archive = args.data / spec.archive
                if not archive.exists():
                    raise SystemExit(f"error: {archive}: missing; --data must hold {spec.archive}")
                unpack(archive, root / spec.archive.removesuffix(".tar.zst"))
                unpacked.add(spec.archive)
            sub = root / spec.archive.removesuffix(".tar.zst") if spec.archive else root
            build(spec, sub, args.out, args.agentperf, args.level)
    for stale in args.out.glob("*.keys"):
        stale.unlink()
    command = (
        "uv run python -m corpus.reference.build --data ../shared/data --out corpus/reference "
        "--agentperf agentperf_local-<version>-py3-none-any.whl"
    )
    (args.out / "SOURCES.md").write_text(sources_md(args.out, command, args.data))
    print(f"wrote {args.out / 'SOURCES.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
