"""The workload factor on replay's real virtual-time forecast (h100 profile, small corpora):
real Claude Code sessions get a factor below 1 with an interval; sessions drawn like the
reference get a factor near 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus import reference, synth
from stats.cli import app
from stats.comparison import factor_for
from stats.forecaster import Engine
from stats.reference import resolve


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def test_sessions_drawn_like_the_reference_get_a_factor_near_one(
    engine: Engine, tmp_path: Path
) -> None:
    like = tmp_path / "like.zst"
    synth.generate(synth.coding(), like, n=40, seed=21)
    got = factor_for(like, resolve("coding"), engine, halves=2, why=False)
    head = got.headline
    assert head is not None
    assert head.factor is not None
    assert 0.75 <= head.factor <= 1.3
    assert head.low is not None
    assert head.high is not None
    assert head.low < head.factor < head.high
    assert "forecast" in got.engine


def test_real_claude_code_sessions_get_a_factor_below_one_with_an_interval() -> None:
    res = CliRunner().invoke(
        app,
        ["compare", str(reference.path("example")), "--json", "--halves", "2", "--no-why"],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    cap = doc["capacity"]
    tier = cap["tiers"][0]
    assert (tier["floor"], tier["ttft"]) == (20, 10)
    assert tier["factor"] < 1
    assert tier["low"] < tier["factor"] < tier["high"] < 1
    assert cap["answer"].startswith("on 1 × h100")
    assert "the agents per MW of the AgentPerf coding set (range" in cap["answer"]
    check = doc["checklist"]["tiers"][0]
    assert check["agents"] == tier["yours"]["agents"]
    assert check["joules_per_session"] > 0
    assert check["agents_per_mw_facility"] < check["agents_per_mw_gpu"]
