"""`corpus.importers.run` as the CLI calls it, and the bundled reference corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus import CorpusError, Reader, SourceError, importers, reference, sidecar

FIXTURES = Path(__file__).parent / "fixtures"


def test_formats_are_the_documented_ones() -> None:
    assert importers.FORMATS == (
        "agentic-mooncake",
        "agentperf-local",
        "bailian",
        "claude-code",
        "codex",
        "conversations",
        "dynamo",
        "mini-swe-agent",
        "mooncake",
        "otel",
        "tracelab",
        "weka",
    )
    for fmt in importers.FORMATS:
        assert importers.describe(fmt)


def test_unknown_format_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        CorpusError, match="expected one of agentic-mooncake, agentperf-local, bailian, claude-code"
    ):
        importers.run("csv", [FIXTURES], tmp_path / "x.zst")


def test_report_counts_what_was_written(tmp_path: Path) -> None:
    out = tmp_path / "w.zst"
    seen: list[tuple[int, int]] = []
    report = importers.run(
        "weka",
        [FIXTURES / "weka"],
        out,
        progress=lambda done, total: seen.append((done, total)),
        license="Apache-2.0",
        notes="test corpus",
    )
    table = Reader(out).table()
    assert (report.sessions, report.turns) == (table.n_sessions, table.n_turns) == (4, 8)
    assert report.input_tokens == int(table.turns["input"].sum())
    assert report.output_tokens == int(table.turns["output"].sum())
    total = sum(p.stat().st_size for p in (FIXTURES / "weka").glob("*.json"))
    assert seen[-1] == (total, total)
    assert len(seen) == report.sessions + 1
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    header = Reader(out).header
    assert (header.domain, header.license, header.source) == ("coding", "Apache-2.0", "import:weka")
    assert header.notes.startswith("test corpus; weka:")
    assert sidecar(out).exists()  # keys=True by default: the corpus can be appended to


def test_keys_false_writes_no_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "w.zst"
    importers.run("weka", [FIXTURES / "weka"], out, keys=False)
    assert out.exists()
    assert not sidecar(out).exists()


def test_existing_output_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "w.zst"
    out.write_bytes(b"mine")
    with pytest.raises(CorpusError, match="already exists"):
        importers.run("weka", [FIXTURES / "weka"], out)
    assert out.read_bytes() == b"mine"


def test_wrong_format_leaves_no_output(tmp_path: Path) -> None:
    out = tmp_path / "x.zst"
    with pytest.raises(SourceError, match="no mooncake sessions found .* first problem: "):
        importers.run("mooncake", [FIXTURES / "agentperf"], out)
    assert not out.exists()
    assert not sidecar(out).exists()


def test_missing_source_and_empty_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope: no such file or folder"):
        importers.run("conversations", [tmp_path / "nope"], tmp_path / "x.zst")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="folder holds no mini-swe-agent trajectories"):
        importers.run("mini-swe-agent", [tmp_path / "empty"], tmp_path / "x.zst")


def test_reference_corpora_are_bundled_with_their_licence() -> None:
    assert reference.NAMES == (
        "agentperf-local",
        "claude-code",
        "coding",
        "example",
        "support",
        "swe-bench",
    )
    for name in reference.NAMES:
        path = reference.path(name)
        assert path.suffix == ".zst"
        assert path.exists()
        assert not sidecar(path).exists()
        header = Reader(path).header
        assert header.license in ("Apache-2.0", "MIT")
        assert header.source.startswith(("import:", "synth:"))
    assert reference.path("support.zst") == reference.path("support")
    assert Reader(reference.path("support")).header.domain == "support"
    total = sum(reference.path(n).stat().st_size for n in reference.NAMES)
    assert total <= 15 * 1024 * 1024
    with pytest.raises(CorpusError, match="no reference corpus 'legal'"):
        reference.path("legal")
