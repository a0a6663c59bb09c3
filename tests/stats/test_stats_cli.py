from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stats.cli import app

Build = Callable[..., Path]
runner = CliRunner()

SESSIONS = [
    {
        "start": 0.0,
        "turns": [
            {
                "t": 0.0,
                "input": 10,
                "output": 5,
                "blocks": [1, 2, 3],
                "ttft": 0.5,
                "duration": 1.0,
                "stop": "tool_use",
            },
            {
                "t": 2.0,
                "input": 14,
                "output": 7,
                "blocks": [1, 2, 4, 5],
                "after": "tool",
                "wait": 1.0,
                "stop": "end_turn",
            },
        ],
    },
    {
        "start": 3.0,
        "parent": 0,
        "turns": [
            {"t": 0.0, "input": 9, "output": 3, "blocks": [1, 2, 6], "after": "start"},
        ],
    },
]


@pytest.fixture(scope="module")
def corpus_path(build: Build) -> Path:
    return build(SESSIONS)


def test_describe_prints_tables(corpus_path: Path) -> None:
    res = runner.invoke(app, ["describe", str(corpus_path)], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    for text in (
        "Per turn",
        "Per session",
        "Prefix cache",
        "input tokens",
        "infinite",
        "stop reasons: ",
    ):
        assert text in res.stdout


def test_describe_json_schema(corpus_path: Path) -> None:
    res = runner.invoke(app, ["describe", str(corpus_path), "--json", "--cache-tokens", "8"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "agentload.stats.describe/1"
    (d,) = doc["corpora"]
    assert set(d) >= {
        "file",
        "header",
        "counts",
        "turn",
        "session",
        "prefix_hit_ratio",
        "lru",
        "arrivals",
        "context_growth",
        "notes",
        "damage",
    }
    assert d["counts"] == {
        "sessions": 2,
        "subagent_sessions": 1,
        "turns": 3,
        "input_tokens": 33,
        "output_tokens": 15,
    }
    # turn 2 inherits 8 tokens; session 2's [1 2] was seen: 8 more. 16 of 33.
    assert d["prefix_hit_ratio"] == pytest.approx(16 / 33)
    assert d["lru"]["capacity_tokens"] == 8
    assert 0 <= d["lru"]["hit_ratio"] <= d["prefix_hit_ratio"]
    assert set(d["turn"]["wait"]) == {"start", "tool", "user"}
    assert d["turn"]["wait"]["user"]["n"] == 0
    assert d["turn"]["stop"] == {"tool_use": 1, "end_turn": 1, "none": 1}
    assert d["context_growth"][0] == {"turn": 1, "n": 2, "p10": 9.1, "p50": 9.5, "p90": 9.9}


def test_describe_several_files_describes_each(corpus_path: Path, build: Build) -> None:
    other = build(SESSIONS[:1])
    res = runner.invoke(app, ["describe", str(corpus_path), str(other), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [c["counts"]["turns"] for c in doc["corpora"]] == [3, 2]


def test_describe_html_is_self_contained(corpus_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    res = runner.invoke(app, ["describe", str(corpus_path), "--html", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert html.count("<svg") >= 6
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "Prefix-cache hit ratio against cache size" in html


def test_compare_json_and_html(corpus_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    res = runner.invoke(
        app,
        [
            "compare",
            "--no-factor",
            str(corpus_path),
            "--reference",
            str(corpus_path),
            "--min-sessions",
            "1",
            "--json",
            "--html",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "agentload.stats.compare/1"
    assert doc["verdict"] == "match"
    assert all(m["verdict"] == "match" for m in doc["metrics"].values())
    html = out.read_text()
    assert "<svg" in html
    assert "<script" not in html


def test_compare_against_published_figures_prints_verdicts(corpus_path: Path) -> None:
    res = runner.invoke(
        app,
        ["compare", "--no-factor", str(corpus_path), "-r", "agentperf-published"]
        + ["--min-sessions", "1"],
        env={"COLUMNS": "160"},
    )
    assert res.exit_code == 0, res.output
    assert "trace match: far" in res.stdout
    assert "inputs" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["describe", "/nonexistent/x.zst"],
            "error: /nonexistent/x.zst: cannot read (No such file",
        ),
        (["compare", "/nonexistent/x.zst", "-r", "agentperf-published"], "No such file"),
        (["compare", "{corpus}", "-r", "nope"], "reference 'nope': not a bundled reference"),
        (["describe", "{garbage}"], "not a zstd file; not an agentload corpus"),
    ],
)
def test_errors_are_one_line_on_stderr_with_exit_1(
    args: list[str], message: str, corpus_path: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.zst"
    garbage.write_bytes(b"not a corpus")
    args = [a.format(corpus=corpus_path, garbage=garbage) for a in args]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert res.stdout == ""
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_bundled_example_against_the_default_coding_reference() -> None:
    reference = pytest.importorskip("corpus.reference")
    try:
        example = reference.path("example")
        reference.path("agentperf-local")
    except Exception as exc:  # not built in this checkout
        pytest.skip(f"bundled corpora missing: {exc}")
    res = runner.invoke(app, ["compare", str(example), "--json", "--no-factor"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["reference"]["name"] == "coding"
    assert doc["reference"]["corpus"].endswith("coding.zst")
    assert doc["verdict"] in ("match", "differs", "far")
    assert doc["metrics"]["input"]["basis"] == "both"
    assert doc["implications"]


def test_html_never_overwrites_silently(corpus_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("mine")
    res = runner.invoke(app, ["describe", str(corpus_path), "--html", str(out)])
    assert res.exit_code == 1
    assert "already exists; pass --force" in res.output
    assert out.read_text() == "mine"
    res = runner.invoke(app, ["describe", str(corpus_path), "--html", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert "<svg" in out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary left


def test_html_into_a_missing_directory_fails_before_any_work(
    corpus_path: Path, tmp_path: Path
) -> None:
    target = tmp_path / "no" / "r.html"
    res = runner.invoke(app, ["compare", str(corpus_path), "--html", str(target)])
    assert res.exit_code == 1
    assert res.output.startswith("error: --html")
    assert "no such directory" in res.output


def test_a_damaged_corpus_is_an_error_unless_allowed(damaged_corpus: Path) -> None:
    from corpus.validate import validate

    cut = damaged_corpus
    (message,) = validate(cut).problems
    for command in (["describe", str(cut)], ["compare", str(cut), "-r", "agentperf-published"]):
        res = runner.invoke(app, command, env={"COLUMNS": "160"})
        assert res.exit_code == 1, res.output
        assert message in " ".join(res.stderr.split())
        allowed = runner.invoke(app, [*command, "--allow-damaged"], env={"COLUMNS": "160"})
        assert allowed.exit_code == 0, allowed.output
