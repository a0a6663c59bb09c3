"""The HTML report, `replay report` and `replay compare`: one self-contained page with every
chart, the tiers' lines and boundaries, notes and fidelity; runs side by side with ratios and
the settings that differ."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import msgspec
import numpy as np
import pytest
from fixtures_replay import make_corpus
from run_samples import make_run
from typer.testing import CliRunner

from replay import report_html
from replay import results as res
from replay.cli import app, main
from replay.compare import compare
from replay.report_cli import compare_app, report_app
from replay.results import Load
from replay.slo import parse_limit, parse_task
from replay.tiers import Tier

VOID = {"meta", "br", "hr", "img", "input", "link"}


class Structure(HTMLParser):
    """Checks tags nest and close, and collects what the page would fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.svgs = 0
        self.fetches: list[str] = []
        self.titles: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.svgs += 1
        for k, v in attrs:
            if k in ("src", "href") or (k == "xlink:href"):
                self.fetches.append(v or "")
        if tag == "script":
            self.fetches.append("<script>")
        if tag not in VOID:
            self.stack.append(tag)
        self._in_title = tag == "text" and ("class", "title") in attrs

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.svgs += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack, f"</{tag}> closes nothing"
        assert self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1]}>"
        self.stack.pop()
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)


def parse(text: str) -> Structure:
    s = Structure()
    s.feed(text)
    s.close()
    assert s.stack == [], f"unclosed tags: {s.stack}"
    return s


def test_report_is_one_self_contained_page_with_every_chart() -> None:
    run = make_run()
    page = report_html.render(run)
    s = parse(page)
    assert s.fetches == []  # nothing fetched: no src/href/script at all
    assert not re.search(r"url\(|@import", page)
    assert s.svgs == 11
    for title in ("P25 output speed per request", "P95 time to first token",
                  "Throughput (steady window)", "Mean power (steady window)",
                  "Prefix-cache hits seen by the server", "Errors",
                  "Agents whose own requests met the tier",
                  "Each agent's P25 output speed (CDF per level)", "Output tokens/s over the run",
                  "Requests in flight", "P95 time to first token by request start"):
        assert title in s.titles
    assert 'class="badge simulated">simulated' in page


def test_report_draws_tier_lines_and_the_boundary_found() -> None:
    run = make_run()
    page = report_html.render(run)
    assert run.tiers[0].agents == 24
    for label in ("20 tok/s", "60 tok/s", "TTFT ≤ 10 s", "TTFT ≤ 3 s", "20 tok/s: 24"):
        assert f">{label}</text>" in page
    # a dot per measured level on the speed chart, with its value as a tooltip
    assert page.count("<title>measured levels: 24, ") >= 6
    # the tier nobody met says why, beside the table
    assert "a single agent gets 53 tok/s &lt; 60 (P25): no load can meet it" in page


def test_report_carries_every_note_fidelity_and_setting() -> None:
    run = make_run()
    run.notes.append("levels 3 never reached a stable rate <before> the warm-up limit")
    run.interrupted = True
    page = report_html.render(run)
    assert "levels 3 never reached a stable rate &lt;before&gt; the warm-up limit" in page
    assert "interrupted: results cover the levels measured before the stop" in page
    assert "input server ÷ recorded" in page
    assert "agents: the most concurrent agents" in page  # the table's legend
    assert "<td>wait</td><td>recorded</td>" in page
    assert page.count("<tr>") >= 1 + len(run.levels) * 2


def test_a_run_without_levels_still_renders() -> None:
    run = make_run()
    run.levels, run.tiers = [], []
    s = parse(report_html.render(run))
    assert s.svgs == 8  # the charts against agents say "no data"; no samples, no time charts


def test_compare_gives_ratios_to_the_first_run_and_the_settings_that_differ() -> None:
    a = make_run(name="h100")
    b = make_run(name="b200", speed1=130.0, knee=48, watts=400.0)
    b.settings["wait"] = "aa"
    comp = compare([a, b], ["h100", "b200"])
    first = comp.rows[0]
    assert first.tier == "20 tok/s, 10 s"
    assert first.runs[0].agents == a.tiers[0].agents
    assert first.runs[1].agents == b.tiers[0].agents
    assert first.runs[1].agents_ratio == pytest.approx(b.tiers[0].agents / a.tiers[0].agents)
    assert first.runs[1].per_mw_ratio == pytest.approx(
        b.tiers[0].agents_per_mw / a.tiers[0].agents_per_mw)  # type: ignore[operator]
    assert comp.rows[1].runs[0].agents_ratio is None  # 0 agents in the first run
    diff = {d.setting: d.values for d in comp.differences}
    assert diff["measured"] == ["simulated engine, profile h100", "simulated engine, profile b200"]
    assert diff["wait"] == ["recorded", "aa"]
    assert "api" not in diff
    a.settings["ray"], b.settings["endpoints"] = None, []  # unset, None and empty read alike
    again = compare([a, b], ["a", "b"]).differences
    assert {"ray", "endpoints"}.isdisjoint(d.setting for d in again)
    page = report_html.comparison(comp, [a, b])
    s = parse(page)
    assert s.fetches == []
    assert s.svgs == 4
    assert "<td>wait</td><td>recorded</td><td>aa</td>" in page


def test_compare_lines_up_tiers_a_run_did_not_have() -> None:
    a = make_run()
    b = make_run(tiers=(Tier(30, 15),))
    comp = compare([a, b], ["a", "b"])
    assert [r.tier for r in comp.rows] == ["20 tok/s, 10 s", "60 tok/s, 5 s", "180 tok/s, 3 s",
                                           "30 tok/s, 15 s"]
    assert comp.rows[0].runs[1].agents is None
    assert comp.rows[3].runs[0].agents is None


def save(run: res.Run, path: Path) -> Path:
    path.write_bytes(res.dumps(run))
    return path


def test_report_command_prints_the_table_and_writes_html(tmp_path: Path) -> None:
    src = save(make_run(), tmp_path / "run.json")
    out = tmp_path / "run.html"
    result = CliRunner().invoke(report_app, [str(src), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert "20 tok/s, 10 s" in result.output
    assert "a single agent gets 53 tok/s < 60 (P25)" in result.output
    assert "note: simulated" in result.output
    assert out.read_text().startswith("<!doctype html>")


def test_report_command_names_a_file_that_is_not_a_run(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}')
    result = CliRunner().invoke(report_app, [str(bad)])
    assert result.exit_code == 1
    assert f"error: {bad}: not a replay --json document" in " ".join(result.output.split())


def test_compare_command_writes_json_and_html(tmp_path: Path) -> None:
    a = save(make_run(name="h100"), tmp_path / "h100.json")
    b = save(make_run(name="b200", speed1=130.0, knee=48, watts=400.0), tmp_path / "b200.json")
    out_json, out_html = tmp_path / "c.json", tmp_path / "c.html"
    result = CliRunner().invoke(compare_app, [str(a), str(b), "--json", str(out_json),
                                              "--html", str(out_html)])
    assert result.exit_code == 0, result.output
    assert "differs: measured: h100=simulated engine, profile h100" in result.output
    doc = json.loads(out_json.read_text())
    assert doc["schema"] == "agentload.replay.compare/1"
    assert doc["names"] == ["h100", "b200"]
    assert doc["rows"][0]["runs"][1]["agents_ratio"] > 1
    parse(out_html.read_text())


def test_compare_command_needs_two_runs(tmp_path: Path) -> None:
    a = save(make_run(), tmp_path / "a.json")
    result = CliRunner().invoke(compare_app, [str(a)])
    assert result.exit_code == 1
    assert "compare needs at least two runs" in result.output


def test_a_replay_writes_its_html_report_and_report_reads_the_json_back(
    tmp_path: Path, engine_url: str
) -> None:
    corpus = make_corpus(tmp_path / "tiny.zst", sessions=3, turns=4)
    out_json, out_html = tmp_path / "run.json", tmp_path / "run.html"
    # --warmup-max 60: warm-up waits for a steady rate (short, a loaded machine looks unstable)
    result = CliRunner().invoke(app, [
        str(corpus), "--endpoint", engine_url + "/v1", "--agents", "2", "--quick", "--duration",
        "1", "--warmup", "0.2", "--warmup-max", "60", "--min-requests", "5", "--no-progress",
        "--wait", "fixed:0.01", "--json", str(out_json), "--html", str(out_html)])
    assert result.exit_code == 0, result.output
    page = out_html.read_text()
    assert 'class="badge live">live' in page
    assert parse(page).svgs == 16  # 11, plus 5 from the server's /metrics (Level.server)
    again = tmp_path / "again.html"
    with pytest.raises(SystemExit) as stop:
        main(["report", str(out_json), "--html", str(again)])
    assert stop.value.code == 0
    assert again.read_text() == page


def test_server_metrics_are_charted_when_the_levels_carry_them() -> None:
    run = make_run()
    assert "Server metrics" not in report_html.render(run)
    run.levels = [msgspec.structs.replace(
                      lv, server=Load(source="vllm", running_mean=lv.agents * 0.8,
                                      kv_usage_mean=min(1.0, lv.agents / 30)))
                  for lv in run.levels]
    page = report_html.render(run)
    s = parse(page)
    assert "Server metrics" in page
    assert "Requests running (server)" in s.titles
    assert "KV-cache usage (server)" in s.titles
    assert "GPU utilisation" not in s.titles  # not reported: not drawn
    assert s.svgs == 13


def test_further_constraints_get_a_chart_with_their_bound() -> None:
    limits = (parse_limit("e2e:p95=60"), parse_task("1.5x"))
    run = make_run(tiers=(Tier(20, 10, limits=limits), Tier(60, 5, limits=limits)))
    assert run.tiers[0].limits == ["P95 e2e ≤ 60 s", "P95 task ≤ 1.5×"]
    page = report_html.render(run)
    s = parse(page)
    assert "P95 e2e ≤ 60 s (end-to-end latency)" in s.titles
    assert ">P95 e2e ≤ 60 s</text>" in page  # the bound's line
    # no recorded durations in these samples: the task chart says "no data"
    assert "P95 task ≤ 1.5× (task time ÷ recorded)" in s.titles
    assert s.svgs == 13


def test_compare_keeps_tiers_with_other_statistics_apart() -> None:
    a = make_run()
    b = make_run(tiers=(Tier(20, 10, speed_pct=1, ttft_pct=99),))
    comp = compare([a, b], ["aa", "mlperf"])
    names = [r.tier for r in comp.rows]
    assert names[0] == "20 tok/s, 10 s"
    assert names[-1] == "20 tok/s, 10 s · P1/P99"
    assert comp.rows[0].runs[1].agents is None
    assert comp.rows[-1].runs[0].agents is None
    assert {d.setting for d in comp.differences} >= {"tiers"}


def test_a_boundary_label_at_the_right_edge_stays_inside_the_plot() -> None:
    from replay import svg
    chart = svg.Chart("t", "x", "y", series=[svg.Series("", [1, 2, 100], [1, 2, 3])],
                      vlines=[(2.0, "20 tok/s: 2"), (99.0, "20 tok/s: 99")])
    text = svg.render(chart)
    left, right = text.split(">20 tok/s: 2<")[0], text.split(">20 tok/s: 99<")[0]
    assert not left.rsplit("<text", 1)[1].count("text-anchor")
    assert 'text-anchor="end"' in right.rsplit("<text", 1)[1]


def test_report_and_compare_refuse_to_replace_outputs_without_force(tmp_path: Path) -> None:
    a = save(make_run(), tmp_path / "a.json")
    b = save(make_run(speed1=130.0), tmp_path / "b.json")
    out = tmp_path / "out.html"
    out.write_text("keep me")
    for app_, args in ((report_app, [str(a)]), (compare_app, [str(a), str(b)])):
        result = CliRunner().invoke(app_, [*args, "--html", str(out)])
        assert result.exit_code == 1
        assert f"{out}: already exists; pass --force to replace it" in " ".join(
            result.output.split())
        assert "20 tok/s" not in result.output  # refused before any work
        assert out.read_text() == "keep me"
        result = CliRunner().invoke(app_, [*args, "--html", str(out), "--force"])
        assert result.exit_code == 0, result.output
        assert out.read_text().startswith("<!doctype html>")
        out.write_text("keep me")
    result = CliRunner().invoke(compare_app, [str(a), str(b), "--json", str(a)])
    assert result.exit_code == 1
    assert "is also an input" in result.output


def test_server_token_rates_are_per_modelled_second_on_a_time_scaled_engine(
    tmp_path: Path,
) -> None:
    corpus = make_corpus(tmp_path / "tiny.zst", sessions=4, turns=6, output=60)
    out = tmp_path / "run.json"
    result = CliRunner().invoke(app, [
        str(corpus), "--profile", "h100", "--time-scale", "0.25", "--agents", "2", "--quick",
        "--duration", "4", "--warmup", "1", "--warmup-max", "2", "--min-requests", "3",
        "--no-progress", "--wait", "fixed:0.01", "--json", str(out)])
    assert result.exit_code in (0, 1), result.output
    (level, *_) = res.loads(out.read_bytes()).levels
    assert level.server is not None
    assert level.server.generation_tps is not None
    tokens_s = report_html.throughput(level)
    assert tokens_s is not None
    # the same tokens over the same window: rates agree far closer than the 4x time scale
    assert 0.5 < level.server.generation_tps / tokens_s < 2.0


def test_tokens_delivered_over_time_match_a_request_by_request_sum() -> None:
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 100, 300)
    b = a + rng.uniform(0, 20, 300)
    b[:5] = a[:5]  # zero-length deliveries count at once
    tokens = rng.integers(0, 500, 300).astype(float)
    at = np.linspace(-5, 130, 28)
    expected = [sum((t * (e >= x)) if y == x else t * min(max(e - x, 0), y - x) / (y - x)
                    for x, y, t in zip(a, b, tokens, strict=True)) for e in at]
    got = report_html.delivered(a, b, tokens, at)
    assert got == pytest.approx(expected, abs=1e-6)
    assert got[-1] == pytest.approx(tokens.sum())


def test_a_forecast_says_so_and_names_its_topology() -> None:
    from replay.results import Modelled
    run = make_run()
    run.simulated, run.forecast = False, True
    run.modelled = Modelled(engine="h100", engine_description="modelled", gpus_per_engine=1,
                            topology="2 × h100 behind a prefix router (2 GPUs)", replicas=2,
                            router="prefix", gpus=2, block_size=64)
    page = report_html.render(run)
    assert 'class="badge forecast">forecast' in page
    assert "forecast, 2 × h100 behind a prefix router (2 GPUs)" in page
    comp = compare([make_run(), run], ["sim", "forecast"])
    assert comp.kinds == ["simulated", "forecast"]
    assert any("different kinds" in n for n in comp.notes)
