"""The `corpus` command: exit codes, messages on stderr, JSON for machines, safe outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from corpus_samples import build
from typer.testing import CliRunner

from corpus import Reader
from corpus.cli import app

runner = CliRunner()


def corpus(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def sample_file(tmp_path: Path) -> Path:
    build(tmp_path / "c.zst", sessions=20, seed=4)
    return tmp_path / "c.zst"


def test_info_json_has_the_documented_keys(sample_file: Path) -> None:
    result = corpus("info", sample_file, "--json")
    assert result.exit_code == 0, result.stderr
    facts = json.loads(result.stdout)
    for key in (
        "sessions",
        "turns",
        "input_tokens",
        "output_tokens",
        "block_size",
        "source",
        "domain",
        "tokenizer",
        "created",
        "producer",
        "license",
        "time_span",
        "sub_agents",
        "models",
        "apis",
        "agents",
    ):
        assert key in facts
    assert facts["sessions"] == 20
    assert facts["block_size"] == 16
    assert facts["turns"] == Reader(sample_file).table().n_turns


def test_info_text(sample_file: Path) -> None:
    result = corpus("info", sample_file)
    assert result.exit_code == 0
    assert "16-token blocks" in result.stdout
    assert "sessions" in result.stdout


def test_bad_input_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "x.zst").write_bytes(b"hello")
    for args in (
        ("info", tmp_path / "x.zst"),
        ("validate", tmp_path / "missing.zst"),
        ("salvage", tmp_path / "x.zst", "-o", tmp_path / "y.zst"),
    ):
        result = corpus(*args)
        assert result.exit_code == 1
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.output
        assert result.stdout == ""


def test_validate_ok_and_bad(sample_file: Path, tmp_path: Path) -> None:
    result = corpus("validate", sample_file)
    assert result.exit_code == 0
    assert "ok" in result.stdout
    cut = tmp_path / "cut.zst"
    cut.write_bytes(sample_file.read_bytes()[:-9])
    result = corpus("validate", cut)
    assert result.exit_code == 1
    assert "truncated" in result.stderr
    assert "corpus salvage" in result.stderr
    assert "1 problem (1 frame)" in result.stderr


def test_merge_needs_disjoint_for_unrelated_corpora(sample_file: Path, tmp_path: Path) -> None:
    build(tmp_path / "b.zst", sessions=5, seed=9)
    out = tmp_path / "m.zst"
    result = corpus("merge", sample_file, tmp_path / "b.zst", "-o", out)
    assert result.exit_code == 1
    assert "--disjoint" in result.stderr
    result = corpus("merge", sample_file, tmp_path / "b.zst", "-o", out, "--disjoint")
    assert result.exit_code == 0, result.stderr
    assert "25 sessions" in result.stdout
    result = corpus("merge", sample_file, tmp_path / "b.zst", "-o", out, "--disjoint")
    assert result.exit_code == 1
    assert "already exists; pass --force" in result.stderr
    result = corpus("merge", sample_file, sample_file, "-o", out, "--force")
    assert result.exit_code == 0, result.stderr  # one corpus twice: same key, ids shared
    assert "40 sessions" in result.stdout


def test_filter(sample_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.zst"
    result = corpus("filter", sample_file, "-o", out, "--model", "model-b", "--min-turns", "2")
    assert result.exit_code == 0, result.stderr
    sessions = list(Reader(out).sessions())
    assert sessions
    assert all(s.model == "model-b" and len(s.turns) >= 2 for s in sessions)
    assert f"kept {len(sessions)} of 20 sessions" in result.stdout


def test_sample_is_deterministic(sample_file: Path, tmp_path: Path) -> None:
    for name in ("a.zst", "b.zst"):
        result = corpus("sample", sample_file, "-n", 4, "--seed", 7, "-o", tmp_path / name)
        assert result.exit_code == 0, result.stderr

    def content(path: Path) -> list:
        return [(s.start, s.model, s.prefixes()) for s in Reader(path).sessions()]

    assert content(tmp_path / "a.zst") == content(tmp_path / "b.zst")


def test_salvage_output_is_readable(sample_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.zst"
    cut.write_bytes(sample_file.read_bytes()[:-40])
    out = tmp_path / "fixed.zst"
    result = corpus("salvage", cut, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "damage: frame" in result.stdout
    assert "truncated" in result.stdout
    assert "kept" in result.stdout
    assert corpus("validate", out).exit_code == 0


def test_import_and_export_go_through_the_interop_packages(
    monkeypatch: pytest.MonkeyPatch, sample_file: Path, tmp_path: Path
) -> None:
    calls: list[tuple] = []

    def run_import(fmt, sources, out, *, domain=None, block_size=None, level=19, progress=None):
        calls.append(("import", fmt, sources, domain, block_size, level))
        out.write_bytes(sample_file.read_bytes())
        if progress is not None:
            progress(1, 2)
        return types.SimpleNamespace(
            sessions=20,
            turns=3,
            input_tokens=10,
            output_tokens=2,
            skipped=["a.jsonl:3: bad line"],
            warnings=[],
        )

    def run_export(fmt, src, out):
        calls.append(("export", fmt, src))
        out.write_text("{}\n")

    importers = types.SimpleNamespace(FORMATS={"mooncake": None}, run=run_import)
    exporters = types.SimpleNamespace(FORMATS={"weka": None}, run=run_export)
    monkeypatch.setitem(sys.modules, "corpus.importers", importers)
    monkeypatch.setitem(sys.modules, "corpus.exporters", exporters)

    out = tmp_path / "imported.zst"
    result = corpus(
        "import",
        "mooncake",
        tmp_path / "a.jsonl",
        "-o",
        out,
        "--domain",
        "chat",
        "--block-size",
        512,
        "--level",
        3,
    )
    assert result.exit_code == 0, result.stderr
    assert calls[0] == ("import", "mooncake", [tmp_path / "a.jsonl"], "chat", 512, 3)
    assert out.exists()
    assert "20 sessions" in result.stdout
    assert "a.jsonl:3: bad line" in result.stderr
    assert not list(tmp_path.glob(".imported*"))

    result = corpus("import", "nope", tmp_path / "a.jsonl", "-o", tmp_path / "n.zst")
    assert result.exit_code == 1
    assert "unknown import format 'nope'; expected one of mooncake" in result.stderr

    result = corpus("export", "weka", out, "-o", tmp_path / "w.json")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "w.json").read_text() == "{}\n"
    result = corpus("export", "weka", out, "-o", tmp_path / "w.json")
    assert result.exit_code == 1
    assert "already exists" in result.stderr


def test_console_script_runs_as_a_module(sample_file: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "corpus", "info", str(sample_file), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sessions"] == 20


def test_mooncake_round_trip_through_the_real_interop(tmp_path: Path) -> None:
    build(tmp_path / "c.zst", sessions=8, seed=3, block_size=512)
    jsonl, back = tmp_path / "c.jsonl", tmp_path / "back.zst"
    result = corpus("export", "mooncake", tmp_path / "c.zst", "-o", jsonl)
    assert result.exit_code == 0, result.stderr
    result = corpus("import", "mooncake", jsonl, "-o", back)
    assert result.exit_code == 0, result.stderr
    before = json.loads(corpus("info", tmp_path / "c.zst", "--json").stdout)
    after = json.loads(corpus("info", back, "--json").stdout)
    for key in ("turns", "input_tokens", "output_tokens", "block_size"):
        assert after[key] == before[key]
    assert corpus("validate", back).exit_code == 0


def test_import_and_export_help_list_every_format() -> None:
    from corpus import exporters, importers
    from corpus.cli import EXPORT_FORMATS, IMPORT_FORMATS

    assert sorted(IMPORT_FORMATS) == sorted(importers.FORMATS)
    assert sorted(EXPORT_FORMATS) == sorted(exporters.FORMATS)
    for command, formats in (("import", IMPORT_FORMATS), ("export", EXPORT_FORMATS)):
        result = runner.invoke(app, [command, "--help"], terminal_width=200)
        assert result.exit_code == 0
        for name in formats:
            assert f"{name}:" in result.output


def test_agentic_mooncake_round_trip_through_the_cli(sample_file: Path, tmp_path: Path) -> None:
    v2, v1 = tmp_path / "v2.jsonl", tmp_path / "v1.jsonl"
    assert corpus("export", "agentic-mooncake", sample_file, "-o", v2).exit_code == 0
    legacy = corpus("export", "agentic-mooncake", sample_file, "-o", v1, "--format-version", 1)
    assert legacy.exit_code == 0
    assert json.loads(v2.read_text().splitlines()[0])["schema"] == "dynamo.agentic_mooncake"
    assert "wait_for" in v1.read_text()
    bad = corpus(
        "export", "mooncake", sample_file, "-o", tmp_path / "m.jsonl", "--format-version", 1
    )
    assert bad.exit_code != 0
    assert "agentic-mooncake exports only" in bad.output
    size = str(Reader(sample_file).header.block_size)
    for path, extra in ((v2, []), (v1, ["--block-size", size])):
        out = tmp_path / f"{path.stem}.zst"
        result = corpus("import", "agentic-mooncake", path, "-o", out, *extra)
        assert result.exit_code == 0, result.output
        back = list(Reader(out).sessions())
        # sessions without turns have no row
        assert len(back) == len([s for s in Reader(sample_file).sessions() if s.turns])
