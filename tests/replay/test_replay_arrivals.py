"""Open populations (`--arrivals`): the schedules, and a run where sessions arrive and leave —
on the modelled engine in virtual time and live against `replay serve`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_replay import Spec, make_tree_corpus
from typer.testing import CliRunner

from replay.arrivals import parse
from replay.cli import app
from replay.errors import ConfigError
from replay.workload import Workload

STARTS = [Spec(start=s, t=(0.0, 5.0)) for s in (0.0, 10.0, 40.0)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree_corpus(tmp_path_factory.mktemp("a") / "a.zst", STARTS)


def test_recorded_arrivals_keep_the_recorded_gaps_compressed(corpus: Path) -> None:
    w = Workload.load(corpus)
    assert parse("recorded").schedule(w, seed=0, horizon=41) == [(0, 0), (10, 1), (40, 2)]
    got = parse("recorded:10").schedule(w, seed=0, horizon=8.15)
    # one pass spans 4 s, the next starts 0.1 s (one compressed second) after its last
    assert [r for _, r in got] == [0, 1, 2, 0, 1, 2]
    assert [t for t, _ in got] == pytest.approx([0, 1, 4, 4.1, 5.1, 8.1])


def test_poisson_arrivals_are_seeded_and_deal_every_session(corpus: Path) -> None:
    w = Workload.load(corpus)
    a = parse("poisson:2").schedule(w, seed=1, horizon=300)
    assert a == parse("poisson:2").schedule(w, seed=1, horizon=300)
    assert a != parse("poisson:2").schedule(w, seed=2, horizon=300)
    assert 500 < len(a) < 700  # ~2 per second
    assert sorted(r for _, r in a[:3]) == [0, 1, 2]  # each pass deals every session once


def test_recorded_arrivals_need_recorded_start_times(tmp_path: Path) -> None:
    same = make_tree_corpus(tmp_path / "s.zst", [Spec(start=0.0), Spec(start=0.0)])
    with pytest.raises(ConfigError, match="use --arrivals poisson:RATE"):
        parse("recorded").schedule(Workload.load(same), seed=0, horizon=10)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("bursty", "expected recorded"), ("poisson", "needs a rate"), ("poisson:x", "not a number"),
     ("recorded:0", "must be positive")],
)
def test_bad_arrival_specs_say_what_is_expected(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(spec)


def run(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    return {"output": result.output}


def check_open_run(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert doc["arrivals"] == "sessions arriving as a Poisson process, 0.5 per second"
    (level,) = doc["levels"]
    assert level["arrivals"] > 5
    assert level["in_flight"]
    assert max(n for _, n in level["in_flight"]) >= 1
    assert level["requests"] > 5
    for tier in doc["tiers"]:
        assert 0 <= tier["attainment"] <= 1


def test_a_forecast_runs_an_open_population(corpus: Path, tmp_path: Path) -> None:
    out = run(str(corpus), "--forecast", "--arrivals", "poisson:0.5", "--duration", "30",
              "--warmup", "10", "--wait", "fixed:1", "--json", str(tmp_path / "o.json"))
    check_open_run(tmp_path / "o.json")
    assert "open population" in str(out["output"])


def test_a_live_run_takes_an_open_population(
    corpus: Path, engine_url: str, tmp_path: Path
) -> None:
    # 4 sessions a second: a 3 s window without an arrival is a e**-12 chance, not a 1 in 5 one;
    # warm-up waits for a steady rate with a generous deadline (a loaded machine is lumpy)
    run(str(corpus), "--endpoint", engine_url + "/v1", "--arrivals", "poisson:4",
        "--duration", "3", "--warmup", "1", "--warmup-max", "60", "--wait", "fixed:0.1",
        "--quick", "--min-requests", "1", "--json", str(tmp_path / "l.json"))
    doc = json.loads((tmp_path / "l.json").read_text())
    (level,) = doc["levels"]
    assert level["in_flight"]
    assert level["arrivals"] >= 1


def test_arrivals_and_agents_do_not_mix(corpus: Path) -> None:
    result = CliRunner().invoke(app, [str(corpus), "--forecast", "--arrivals", "recorded",
                                      "--agents", "3"])
    assert result.exit_code == 1
    assert "drop --agents" in result.output
