"""The terminal view: live line, level lines and the final table say what they measured."""

from __future__ import annotations

import io

from rich.console import Console

from replay.level import Live
from replay.progress import View, notes, table
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
                      TierResult(floor=60, ttft=5, agents=0, inconclusive=True)])


def render(simulated: bool) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=140, color_system=None)
    with View(console, label="simulated h100", mode="simulated" if simulated else "") as view:
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
    assert "0 ?" in text


def test_endpoint_runs_name_the_endpoint() -> None:
    text = render(False)
    assert "http://h:8000/v1" in text
    assert "simulated engine" not in text


def test_notes_mention_an_interruption() -> None:
    assert any("interrupted" in n for n in notes(run(False)))
