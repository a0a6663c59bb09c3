"""SLO presets and statistics: named tier tables with sources, configurable percentiles, any
per-request metric as a further constraint, the per-task constraint, and the longest pause
between tokens as the client measures it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fixtures_replay import FlakyServer, make_corpus, running
from run_samples import samples
from typer.testing import CliRunner

from replay import summary
from replay.cli import app
from replay.client import Client
from replay.endpoint import Request
from replay.errors import ConfigError
from replay.presets import PRESETS, choose, describe
from replay.prompts import Prompt
from replay.results import Level, Sample
from replay.slo import Limit, parse_limit, parse_stats, parse_task, task_ratios
from replay.tiers import DEFAULT_TIERS, Tier


def test_the_default_preset_is_the_default_tiers_and_says_where_they_come_from() -> None:
    c = choose()
    assert [(t.floor, t.ttft, t.speed_pct, t.ttft_pct) for t in c.tiers] == [
        (t.floor, t.ttft, 25.0, 95.0) for t in DEFAULT_TIERS]
    (note,) = c.notes
    assert note.startswith("tiers: aa-v4-pro, AA-AgentPerf's DeepSeek V4 Pro tiers")
    assert "approximations" in note
    assert "replay presets" in note
    assert all(p.short and p.source for p in PRESETS.values())
    assert c.settings["slo_stat"] == "speed=p25,ttft=p95"


def test_mlperf_presets_check_p99_ttft_and_the_speed_of_p99_tpot() -> None:
    c = choose(preset="mlperf-interactive")
    t = {round(t.floor, 1): t for t in c.tiers}
    assert (t[25.0].ttft, t[25.0].speed_pct, t[25.0].ttft_pct) == (0.45, 1.0, 99.0)
    assert "MLPerf Inference's interactive" in c.notes[0]
    assert "loadgen/mlperf.conf" in PRESETS["mlperf-interactive"].source
    assert all(p.source for p in PRESETS.values())
    assert any("mlperf-server" in line for line in describe())


def test_slo_tiers_replace_the_preset_but_keep_its_statistics() -> None:
    c = choose(preset="mlperf-interactive", slo_specs=["40:2"])
    assert [(t.floor, t.ttft, t.speed_pct, t.ttft_pct) for t in c.tiers] == [(40, 2, 1, 99)]
    plain = choose(slo_specs=["40:2"])
    assert "approximate AA-AgentPerf" in plain.notes[0]
    assert choose(slo_specs=["40:2"], stat="speed=p10,ttft=p90").notes == []


def test_statistics_limits_and_task_specs_parse() -> None:
    assert parse_stats("speed=p25, ttft=p90") == {"speed": 25, "ttft": 90}
    assert parse_stats("task=median") == {"task": 50}
    assert parse_limit("e2e:p95=60") == Limit("e2e", 95, 60)
    assert parse_limit("gap:p99=0.5s") == Limit("gap", 99, 0.5)
    assert parse_task("1.5x") == Limit("task", 95, 1.5)
    assert parse_limit("speed:p10=15").name == "P10 speed ≥ 15 tok/s"
    assert parse_task("2", 90).name == "P90 task ≤ 2×"
    for bad in ("speed", "speed=25", "tpot=p99", "speed=p101"):
        with pytest.raises(ConfigError, match="--slo-stat"):
            parse_stats(bad)
    for bad in ("e2e=60", "e2e:p95", "latency:p95=1", "e2e:p95=-1", "task:p95=1.5"):
        with pytest.raises(ConfigError, match="--slo-limit"):
            parse_limit(bad)
    with pytest.raises(ConfigError, match="--task-slo"):
        parse_task("fast")
    with pytest.raises(ConfigError, match="--slo-preset 'nope'"):
        choose(preset="nope")


def level_of(tiers: list[Tier], speed: float = 40.0, ttft: float = 0.5) -> Level:
    level = Level(agents=4, index=0, started=0, window_start=0, window_end=40, warmup_s=0,
                  stable=True)
    return summary.fill(level, samples(4, 0, 40, speed, ttft, random.Random(3)), tiers,
                        max_error_rate=0.05)


def test_the_statistic_decides_the_verdict() -> None:
    loose, strict = Tier(35, 10), Tier(35, 10, speed_pct=1, ttft_pct=99)
    lv = level_of([loose, strict])
    assert lv.verdicts[0].passed
    assert not lv.verdicts[1].passed
    assert lv.verdicts[1].reason.startswith("P1 speed ")
    assert lv.verdicts[1].speed is not None
    assert lv.verdicts[0].speed is not None
    assert lv.verdicts[1].speed < lv.verdicts[0].speed


def test_further_limits_fail_a_tier_and_say_which() -> None:
    e2e = parse_limit("e2e:p95=1")
    lv = level_of([Tier(20, 10), Tier(20, 10, limits=(e2e,))])
    assert lv.verdicts[0].passed
    assert not lv.verdicts[1].passed
    assert lv.verdicts[1].reason.startswith("P95 e2e ")
    assert lv.verdicts[1].reason.endswith(" s > 1 s")
    assert lv.verdicts[1].limits["P95 e2e ≤ 1 s"] > 1
    gap = parse_limit("gap:p99=0.1")
    unknown = level_of([Tier(20, 10, limits=(gap,))])  # no sample knows its gaps
    assert unknown.verdicts[0].passed
    assert unknown.verdicts[0].limits == {}


def turn(session: int, i: int, planned: float, start: float, end: float, recorded: float,
         error: str = "") -> Sample:
    return Sample(agent=0, session=session, cycle=0, turn=i, planned=planned, start=start,
                  first=start + 0.1, end=end, input=10, asked=5, output=5, server_input=-1,
                  server_cached=-1, ideal_cached=0, status=200, error=error, recorded=recorded)


def test_tpot_is_the_inverse_of_speed() -> None:
    tpot = parse_limit("tpot:p99=0.04")
    lv = level_of([Tier(0, 100, speed_pct=1, limits=(tpot,))])
    assert lv.verdicts[0].speed is not None
    # the same order statistics, interpolated on the other scale: equal to ~1e-4
    assert lv.verdicts[0].limits["P99 tpot ≤ 0.04 s"] == pytest.approx(
        1 / lv.verdicts[0].speed, rel=1e-3)


def test_task_ratio_is_the_replayed_span_over_the_span_with_recorded_durations() -> None:
    # two turns served in 4 s and 6 s (recorded 2 s and 3 s) around a 10 s wait
    task = [turn(1, 0, 0.0, 0.0, 4.0, 2.0), turn(1, 1, 14.0, 14.0, 20.0, 3.0)]
    (ratio,) = task_ratios(task)
    assert ratio == pytest.approx(20.0 / (2.0 + 10.0 + 3.0))
    failed = [turn(2, 0, 0.0, 0.0, 1.0, 1.0, error="http_500")]
    unrecorded = [turn(3, 0, 0.0, 0.0, 1.0, -1.0)]
    assert task_ratios(task + failed + unrecorded).size == 1


def test_task_slo_fails_a_tier_when_tasks_take_too_long() -> None:
    slow = [turn(s, 0, 0.0, 0.0, 9.0, 3.0) for s in range(5)]
    level = Level(agents=5, index=0, started=0, window_start=0, window_end=10, warmup_s=0,
                  stable=True)
    tiers = [Tier(0, 100, limits=(parse_task("1.5x"),)), Tier(0, 100, limits=(parse_task("4x"),))]
    summary.fill(level, slow, tiers, max_error_rate=0.05)
    assert not level.verdicts[0].passed
    assert level.verdicts[0].reason == "P95 task 3× > 1.5×"
    assert level.verdicts[1].passed


async def test_the_client_measures_the_longest_pause_between_tokens() -> None:
    srv = FlakyServer(delay_s=0.005)
    async with running(srv.app()) as url:
        c = Client(url + "/v1", api="chat", model="m")
        try:
            r = await c.send(Request(Prompt(tokens=3, ideal_cached=0, text=" a b c"), 6, "s"))
        finally:
            await c.close()
    assert r.output == 6
    assert 0 < r.gap <= r.end - r.first


def test_a_run_with_a_preset_limits_and_a_task_slo_records_them(
    tmp_path: Path, engine_url: str
) -> None:
    corpus = make_corpus(tmp_path / "tiny.zst", sessions=3, turns=4)
    out = tmp_path / "run.json"
    # --warmup-max 60: warm-up waits for a steady rate (short, a loaded machine looks unstable)
    result = CliRunner().invoke(app, [
        str(corpus), "--endpoint", engine_url + "/v1", "--agents", "2", "--quick", "--duration",
        "1", "--warmup", "0.2", "--warmup-max", "60", "--min-requests", "5", "--no-progress",
        "--wait", "fixed:0.01", "--slo-preset", "mlperf-interactive", "--slo-limit",
        "e2e:p95=60", "--slo-limit", "gap:p99=5", "--task-slo", "1000x", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["settings"]["slo_preset"] == "mlperf-interactive"
    assert doc["settings"]["slo_limits"] == ["P95 e2e ≤ 60 s", "P99 gap ≤ 5 s",
                                             "P95 task ≤ 1000×"]
    tier = doc["tiers"][0]
    assert (tier["speed_pct"], tier["ttft_pct"]) == (1, 99)
    assert tier["limits"] == doc["settings"]["slo_limits"]
    verdict = doc["levels"][0]["verdicts"][0]
    assert {"P95 e2e ≤ 60 s", "P99 gap ≤ 5 s"} <= verdict["limits"].keys()
    gaps = [s[doc["sample_fields"].index("gap")] for s in doc["levels"][0]["samples"]]
    assert any(g > 0 for g in gaps)
    assert "P1 " in result.output  # the table names the statistics it checked
    assert "P99" in result.output
    assert any("mlperf-interactive" in n for n in doc["notes"])


def test_presets_list_without_a_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    from replay.cli import main
    main(["presets"])
    text = capsys.readouterr().out
    assert "aa-v3.2" in text
    assert "30 tok/s · 15 s" in text


