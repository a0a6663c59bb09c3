"""corpus synth: the seeded generator, fitting a corpus's model, and the coding reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from corpus import CorpusError, Header, Reader, Turn, Writer
from corpus.cli import app
from corpus.synth import Dist, Model, coding, fit, generate, like

KNOWN = Model(
    source="test",
    domain="legal",
    block_size=16,
    turns=Dist.lognormal(12, 40, 1, 200),
    first_input=Dist.lognormal(3_000, 6_000, 500, 20_000),
    families=((0.6, (40,)), (0.2, (10, 12))),
    extend=0.9,
    kept=Dist.log_uniform(0.2, 0.5, 0.9),
    new=Dist.lognormal(400, 3_000, 1, 50_000),
    output=Dist.lognormal(200, 1_500, 1, 8_000),
    tool_wait=Dist.log_uniform(0.5, 2.0, 20.0),
    user_wait=Dist.log_uniform(5.0, 30.0, 300.0),
    user_share=0.2,
    max_input=60_000,
    subagents=Dist.log_uniform(0.5, 1.0, 3.0),
    sub=Model(source="test-sub", block_size=16, turns=Dist.constant(5)),
    gap=30.0,
)


def _turns(path: Path) -> list[Turn]:
    return [t for s in Reader(path).sessions() for t in s.turns]


def test_same_seed_same_corpus(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.zst", tmp_path / "b.zst", tmp_path / "c.zst"
    generate(KNOWN, a, n=20, seed=7)
    generate(KNOWN, b, n=20, seed=7)
    generate(KNOWN, c, n=20, seed=8)
    assert list(Reader(a).sessions()) == list(Reader(b).sessions())
    assert list(Reader(a).sessions()) != list(Reader(c).sessions())


def test_header_labels_the_corpus_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "s.zst"
    generate(KNOWN, out, n=3, seed=1)
    h = Reader(out).header
    assert h.source == "synth:test"
    assert h.notes.startswith("SYNTHETIC: corpus synth --like test -n 3 --seed 1")
    assert h.domain == "legal"
    assert h.block_size == 16


def test_fit_recovers_the_model_it_generated(tmp_path: Path) -> None:
    out = tmp_path / "s.zst"
    generate(KNOWN, out, n=400, seed=3)
    got = fit(out)

    def close(a: float, b: float, tol: float) -> bool:
        return abs(a / b - 1) <= tol

    assert close(got.turns.median, KNOWN.turns.median, 0.15)
    assert close(got.first_input.median, KNOWN.first_input.median, 0.15)
    assert close(got.new.median, KNOWN.new.median, 0.15)
    assert close(got.output.median, KNOWN.output.median, 0.1)
    assert close(got.tool_wait.median, KNOWN.tool_wait.median, 0.1)
    assert close(got.user_wait.median, KNOWN.user_wait.median, 0.2)
    assert abs(got.user_share - KNOWN.user_share) < 0.03
    assert abs(got.extend - KNOWN.extend) < 0.03
    assert got.max_input <= KNOWN.max_input
    assert got.sub is not None
    assert got.sub.turns.median == 5
    assert close(got.subagents.median, KNOWN.subagents.median, 0.5)
    # Shared prefixes: the 40-block family and the 10/12-block one, by share of sessions.
    shares = {max(depths): share for share, depths in got.families}
    assert abs(shares[40] - 0.6) < 0.07
    assert abs(shares[12] - 0.2) < 0.07
    assert got.gap == pytest.approx(30.0, rel=0.2)


def test_sub_agents_name_their_parent_and_start_after_it(tmp_path: Path) -> None:
    out = tmp_path / "s.zst"
    generate(KNOWN, out, n=30, seed=5)
    sessions = {s.id: s for s in Reader(out).sessions()}
    subs = [s for s in sessions.values() if s.parent is not None]
    assert subs
    for s in subs:
        assert sessions[s.parent].parent is None
        assert s.start >= sessions[s.parent].start
        assert len(s.turns) == 5


def test_turns_extend_the_previous_prefix_and_families_share_blocks(tmp_path: Path) -> None:
    out = tmp_path / "s.zst"
    generate(KNOWN, out, n=50, seed=2)
    firsts: dict[int, int] = {}
    for s in Reader(out).sessions():
        if s.parent is not None:
            continue
        full = s.prefixes()
        firsts[full[0][0]] = firsts.get(full[0][0], 0) + 1
        for turn, blocks in zip(s.turns, full, strict=True):
            assert len(blocks) == -(-turn.input // 16)  # one id per (partial) block
            assert turn.input <= KNOWN.max_input
    assert max(firsts.values()) >= 20  # the 60 % family's first block is one id


def test_coding_reference_meets_the_published_figures(tmp_path: Path) -> None:
    out = tmp_path / "coding.zst"
    generate(coding(), out, n=300, seed=0)
    sessions = list(Reader(out).sessions())
    turns = [t for s in sessions for t in s.turns]
    inp = np.array([t.input for t in turns])
    outp = np.array([t.output for t in turns])
    tool = np.array([t.wait for t in turns if t.after == "tool"])
    final = np.array([s.turns[-1].input + s.turns[-1].output for s in sessions])
    assert abs(inp.mean() / 27_000 - 1) < 0.15  # mean ≈ 27K
    assert np.mean((inp >= 5_000) & (inp <= 131_000)) > 0.9  # ≈ 5K–131K
    assert abs(np.median(outp) / 150 - 1) < 0.1  # median ≈ 150
    assert abs(np.percentile(outp, 95) / 2_000 - 1) < 0.15  # p95 ≈ 2K
    assert max(len(s.turns) for s in sessions) <= 200  # up to 200 turns
    assert final.max() > 100_000  # sequences beyond 100K
    assert abs(np.median(tool) - 1.0) < 0.1  # median ≈ 1 s
    assert tool.min() >= 0.1
    assert tool.max() <= 5.0
    assert any("0.12 s" in n for n in coding().notes)  # says where the sources disagree


def test_fit_uses_provider_counts_when_the_recording_lacks_the_system_prompt(
    tmp_path: Path,
) -> None:
    src = tmp_path / "transcript.zst"
    with Writer(src, Header(block_size=4), keys=False) as w:
        for i in range(20):
            sid = w.open_session()
            blocks: list[int] = []
            for k in range(5):
                blocks = blocks + list(range(1000 * i + 10 * k, 1000 * i + 10 * k + 25))
                n = len(blocks) * 4
                w.add_turn(sid, Turn(t=k, input=n, output=5, usage_input=n + 8_000), blocks)
            w.close_session(sid)
    got = fit(src)
    assert got.first_input.median == pytest.approx(100 + 8_000, rel=0.01)
    assert got.new.median == pytest.approx(100, rel=0.01)  # the missing prefix is reused
    assert any("provider" in n for n in got.notes)


def test_like_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such corpus"):
        like(tmp_path / "nope.zst")


def test_cli_synth_writes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    src, out = tmp_path / "src.zst", tmp_path / "out.zst"
    generate(KNOWN, src, n=10, seed=1)
    runner = CliRunner()
    res = runner.invoke(
        app, ["synth", "--like", str(src), "-n", "4", "--seed", "2", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "4 synthetic sessions" in res.output
    assert sum(1 for s in Reader(out).sessions() if s.parent is None) == 4
    again = runner.invoke(app, ["synth", "--like", str(src), "-n", "4", "-o", str(out)])
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_bundled_coding_reference_is_what_the_build_makes(tmp_path: Path) -> None:
    from corpus import reference
    from corpus.reference import build

    out = tmp_path / "coding.zst"
    generate(coding(), out, n=build.CODING_SESSIONS, seed=build.CODING_SEED)
    bundled = reference.path("coding")
    assert list(Reader(out).sessions()) == list(Reader(bundled).sessions())
    assert Reader(bundled).header.source == "synth:coding"
