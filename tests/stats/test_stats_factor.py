"""The workload factor, why, and the buyer's checklist — with a load-model engine behind the
`Forecaster` protocol (the real forecast is replay's; see test_stats_forecast.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from corpus import synth
from stats import compare
from stats.capacity import Capacity, Forecast, workload_factor
from stats.checklist import Facility
from stats.profiles import profile
from stats.report_html import compare as html_compare
from stats.report_text import compare as text_compare


class Load:
    """A fake engine: per-agent demand = GPU-seconds per turn (new tokens to prefill, tokens to
    decode) ÷ seconds per turn (wait, clipped at 300 s, plus a nominal service time); a tier
    keeps a share of the GPU busy (less for faster tiers); power rises with the load."""

    engine = "load model (test engine)"
    budgets = ((20.0, 10.0, 0.9), (60.0, 5.0, 0.5), (180.0, 3.0, 0.0))

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, corpus: Path) -> Forecast:
        self.calls += 1
        p = profile(corpus)
        t = p.turns
        wait = np.nan_to_num(np.minimum(t.wait, 300.0))
        cycle = float((wait + 0.5 + t.output / 50.0).sum())
        demand = float((4e-4 * t.new + 5e-3 * t.output).sum()) / cycle
        per_agent_tokens = float(t.output.sum()) / cycle
        tiers = []
        for floor, ttft, budget in self.budgets:
            agents = int(budget / demand)
            if not agents:
                tiers.append(Capacity(floor=floor, ttft=ttft, agents=0))
                continue
            watts = 100 + 600 * min(1.0, agents * demand)
            tiers.append(
                Capacity(
                    floor=floor,
                    ttft=ttft,
                    agents=agents,
                    agents_per_mw=agents / (watts / 1e6),
                    mean_w=watts,
                    j_per_token=watts / (agents * per_agent_tokens),
                    p25_speed=floor * 1.1,
                    p95_ttft=ttft / 2,
                )
            )
        return Forecast(engine=self.engine, gpus=1, tiers=tuple(tiers), notes=("test engine",))


@pytest.fixture(scope="module")
def like_coding(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("factor") / "like.zst"
    synth.generate(synth.coding(), out, n=40, seed=21)
    return out


@pytest.fixture(scope="module")
def long_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Coding-like sessions whose first requests and new tokens are 5× the reference's."""
    ref = synth.coding()
    model = ref.with_(first_input=ref.first_input.scaled(5), new=ref.new.scaled(5))
    out = tmp_path_factory.mktemp("factor") / "long.zst"
    synth.generate(model, out, n=40, seed=22)
    return out


def test_a_corpus_against_itself_has_factor_one(like_coding: Path) -> None:
    engine = Load()
    got = workload_factor(like_coding, like_coding, engine, halves=3, why=False)
    assert engine.calls == 2 + 2 * 3
    head = got.headline
    assert head is not None
    assert head.factor == pytest.approx(1.0)
    assert head.low is not None
    assert head.high is not None
    assert head.low <= 1.0 <= head.high
    assert got.tiers[2].factor is None  # the 180 tok/s tier serves no agent here
    assert "≈ 1× the agents per MW" in got.sentence()


def test_longer_inputs_get_a_factor_below_one_and_say_why(
    long_inputs: Path, like_coding: Path
) -> None:
    got = workload_factor(
        long_inputs, like_coding, Load(), reference_model=synth.coding(), halves=3
    )
    head = got.headline
    assert head is not None
    assert head.factor is not None
    assert head.factor < 0.8
    assert head.high is not None
    assert head.high < 1.0
    first = got.effects[0]
    assert first.feature in ("input", "new")  # what was changed moves the factor most
    assert first.effect is not None
    assert first.effect > 1.2  # the reference's would give more agents per MW
    assert "yours costs capacity" in first.sentence()
    effects = [abs(math.log(e.effect)) for e in got.effects if e.effect]
    assert effects == sorted(effects, reverse=True)


def test_compare_leads_with_the_factor_and_ranks_metrics_by_effect(
    long_inputs: Path, like_coding: Path
) -> None:
    doc = compare(long_inputs, like_coding, forecaster=Load(), halves=2, min_sessions=10)
    cap = doc["capacity"]
    assert cap["answer"].startswith("on load model (test engine), your agents get ≈")
    tier = cap["tiers"][0]
    assert set(tier) >= {"floor", "ttft", "factor", "low", "high"}
    assert tier["low"] <= tier["factor"] <= tier["high"]
    top = cap["why"][0]["metrics"][0]
    assert next(iter(doc["metrics"])) == top
    assert "effect" in doc["metrics"][top]
    text = _render(doc)
    assert text.index("Workload factor") < text.index("Buyer's checklist") < text.index("KS")
    assert "why (agents/MW" in text


def _render(doc: dict[str, object]) -> str:
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(text_compare(doc))
    return console.export_text()


def test_buyers_checklist_figures(long_inputs: Path, like_coding: Path) -> None:
    doc = compare(
        long_inputs,
        like_coding,
        forecaster=Load(),
        halves=0,
        why=False,
        facility=Facility(pue=1.5, node_watts=800.0, gpus_per_node=8),
        usd_per_gpu_hour=2.0,
    )
    check = doc["checklist"]
    assert check["forecast"]
    t = check["tiers"][0]
    per_session = check["output_tokens_per_session"]
    yours = doc["capacity"]["tiers"][0]["yours"]
    assert t["joules_per_session"] == pytest.approx(yours["j_per_token"] * per_session)
    assert t["tokens_per_s_per_mw"] == pytest.approx(1e6 / yours["j_per_token"])
    gpu_seconds = t["joules_per_session"] / yours["mean_w"]
    assert t["usd_per_session"] == pytest.approx(2.0 * gpu_seconds / 3600)
    assert t["mean_w_facility"] == pytest.approx((yours["mean_w"] + 800.0 / 8) * 1.5)
    assert t["agents_per_mw_facility"] < t["agents_per_mw_gpu"]
    assert check["trace_match"]["factor"] == doc["capacity"]["tiers"][0]["factor"]
    assert check["model_match"]["forecast_assumes"] == "load model (test engine)"
    assert check["facility_match"]["pue"] == 1.5
    assert "no interval" in doc["capacity"]["interval"]


def test_without_a_forecast_the_checklist_says_so(like_coding: Path, tmp_path: Path) -> None:
    doc = compare(like_coding, like_coding, min_sessions=10)
    assert doc["capacity"] is None
    assert doc["checklist"]["tiers"] == []
    assert doc["checklist"]["trace_match"]["verdict"] == doc["verdict"]
    assert "no forecast" in _render(doc)


def test_html_report_carries_the_factor_and_checklist(long_inputs: Path, like_coding: Path) -> None:
    doc = compare(long_inputs, like_coding, forecaster=Load(), halves=0, min_sessions=10)
    html = html_compare(doc, profile(long_inputs), profile(like_coding))
    assert "Workload factor" in html
    assert "Buyer&#x27;s checklist" in html or "Buyer's checklist" in html
    assert "agents/MW facility" in html
