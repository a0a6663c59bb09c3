"""The terminal view: live line, level lines and the final table say what they measured."""

from __future__ import annotations

import io

from rich.console import Console

from replay.level import Live
from replay.progress import View, agents_cell, legend, notes, table
from replay.results import Corpus, Level, Run, TierResult, TierVerdict


def run(simulated: bool) -> Run:
    lv = Level(agents=8, index=0, started=0, window_start=1, window_end=2, warmup_s=1,
               stable=True, p25_speed=42.0, p95_ttft=1.5,
               verdicts=[TierVerdict(floor=20, ttft=10, passed=True),
                         TierVerdict(floor=60, ttft=5, passed=False)])
    return Run(simulated=simulated, profile="h100" if simulated else None,
               endpoint="http://h:8000/v1", api="chat", model="m",
               corpus=Corpus(path="c.zst", domain="legal", sessions=3, turns=9, block_size=64,
                             tokenizer="cl100k_base", recorded_api="", ideal_cache_ratio=0.5),
               run_tag="t", seed=0, levels=[lv], interrupted=True,
               tiers=[TierResult(floor=20, ttft=10, agents=8, agents_per_mw=12_000.0,
                                 p25_speed=42.0, p95_ttft=1.5, cache_hit_ratio=0.9),
                      TierResult(floor=60, ttft=5, agents=None, status="not measured",
                                 reason="the smallest level judged, 8 agents, failed it"),
                      TierResult(floor=180, ttft=3, agents=4, status="unresolved")])


def render(simulated: bool) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=140, color_system=None)
    with View(console, label="simulated h100", simulated=simulated) as view:
        view.tick(Live(level=0, agents=8, phase="window", elapsed=3.0, completed=5,
                       p25_speed=40.0, p95_ttft=1.2, window_requests=5))
        view.level(run(simulated).levels[0])
    console.print(table(run(simulated)))
    return buf.getvalue()


def test_simulated_runs_say_so_everywhere() -> None:
    text = render(True)
    assert "simulated level 1: 8 agents" in text
    assert "simulated engine, profile h100" in text
    assert "12,000" in text
    assert "not measured" in text
    assert "4?" in text


def test_endpoint_runs_name_the_endpoint() -> None:
    text = render(False)
    assert "http://h:8000/v1" in text
    assert "simulated engine" not in text


def test_notes_mention_an_interruption() -> None:
    assert any("interrupted" in n for n in notes(run(False)))


def test_every_symbol_in_the_table_is_explained() -> None:
    r = run(False)
    r.tiers += [TierResult(floor=1, ttft=9, agents=16, capped=True, status="at limit"),
                TierResult(floor=2, ttft=9, agents=12, repeats=3, interval=(12, 15))]
    cells = [agents_cell(t) for t in r.tiers]
    assert cells == ["8", "not measured", "4?", "16+", "12–15"]
    text = " ".join(legend(r))
    for symbol in ("N+", "N?", "N–M", "not measured", "—", "per-agent", "errors"):
        assert symbol in text


def test_notes_say_why_a_tier_has_no_answer() -> None:
    assert any("60 tok/s · 5 s: not measured: the smallest level judged" in n
               for n in notes(run(False)))
