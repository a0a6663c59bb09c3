"""The terminal view: live line, level lines and the final table say what they measured."""

from __future__ import annotations

import io

from rich.console import Console

from replay.explain import cell
from replay.level import Live
from replay.progress import View, legend, notes, reasons, table
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
    assert "simulated h100: one line per measured level" in text
    assert "level 1: 8 agents" in text
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
    cells = [cell(t) for t in r.tiers]
    assert cells == ["8", "not measured", "4?", "16+", "12–15"]
    text = " ".join(legend(r))
    for symbol in ("N+", "N?", "N–M", "not measured", "—", "per-agent", "errors"):
        assert symbol in text


def test_reasons_say_why_a_tier_has_no_answer() -> None:
    assert any("60 tok/s, 5 s: not measured: the smallest level judged" in n
               for n in reasons(run(False)))


def quick_start_like() -> Run:
    """The quick start's shape: one agent alone is slower than two of the three floors."""
    levels = []
    for i, (n, speed, ttft) in enumerate([(1, 58.1, 1.1), (2, 56.5, 1.8), (16, 26.8, 2.8),
                                          (32, 9.5, 59.5)]):
        verdicts = [TierVerdict(floor=f, ttft=c, passed=speed >= f and ttft <= c,
                                reason="" if speed >= f else f"P25 speed {speed} < {f} tok/s")
                    for f, c in ((20, 10), (60, 5), (180, 3))]
        levels.append(Level(agents=n, index=i, started=0, window_start=1, window_end=2,
                            warmup_s=1, stable=True, p25_speed=speed, p95_ttft=ttft,
                            verdicts=verdicts))
    r = run(True)
    r.levels = levels
    r.corpus.path = "corpus/reference/example.zst"
    r.tiers = [TierResult(floor=20, ttft=10, agents=1024, capped=True, agents_per_mw=1_234_567.0,
                          p25_speed=26.8, p95_ttft=12.75, cache_hit_ratio=0.83, errors=12345,
                          agent_share=1.0),
               TierResult(floor=60, ttft=5, agents=0), TierResult(floor=180, ttft=3, agents=0)]
    r.settings = {"max_agents": 1024}
    return r


def test_final_table_fits_80_columns_with_every_header_whole() -> None:
    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(table(quick_start_like()))
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in buf.getvalue()
    header = "\n".join(lines[2:5])
    for word in ("tier", "tok/s, TTFT", "agents", "per MW", "P25", "P95", "TTFT", "cache",
                 "hits", "errors", "per-", "agent"):
        assert word in header
    assert "1,234,567" in buf.getvalue()
    assert "1024+" in buf.getvalue()
    rows = [line for line in lines if "tok/s," in line and "s" in line and "TTFT" not in line]
    assert len(rows) == 3  # no tier label wrapped over several lines


def test_a_tier_no_level_met_says_why_in_one_line() -> None:
    lines = reasons(quick_start_like())
    assert lines[0] == "20 tok/s, 10 s: met at every level up to --max-agents 1024: may serve more"
    assert lines[1] == "60 tok/s, 5 s: a single agent gets 58 tok/s < 60 (P25): no load can meet it"
    assert lines[2].startswith("180 tok/s, 3 s: a single agent gets 58 tok/s < 180")
    assert lines[3] == "tip: a floor is per stream; try --profile b200, or --slo / --slo-preset"
    assert all(len(line) <= 80 for line in lines)


def test_a_tier_missed_by_a_larger_level_names_it() -> None:
    r = quick_start_like()
    r.levels = r.levels[2:]
    assert reasons(r)[1] == "60 tok/s, 5 s: not met even by 16 agents: P25 speed 26.8 < 60 tok/s"


def test_level_lines_fit_80_columns_and_say_what_each_figure_is() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    with View(console, label="simulated h100", simulated=True) as view:
        for lv in quick_start_like().levels:
            view.level(lv)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "simulated h100: one line per measured level"
    assert "P25 output speed · P95 time to first token" in lines[1]
    assert lines[2] == "level 1: 1 agent  P25 58.1 tok/s  P95 1.10 s  0 ok  ✓20 ✗60 ✗180"
    assert lines[5] == "level 4: 32 agents  P25 9.5 tok/s  P95 59.5 s  0 ok  ✗20 ✗60 ✗180"
    assert all(len(line) <= 80 for line in lines[1:])


def test_live_line_stays_one_line_at_80_columns() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    with View(console, label="http://a-long-endpoint-name.example:8000/v1") as view:
        live = Live(level=11, agents=1024, phase="warmup", elapsed=123.0, completed=123456,
                    inflight=1024, errors=17, p25_speed=12.3, p95_ttft=4.56)
        view.tick(live)
        assert view._live is not None
        rendered = Console(width=80, file=io.StringIO(), color_system=None)
        rendered.print(view._live.renderable)
        line = rendered.file.getvalue().rstrip("\n")  # type: ignore[attr-defined]
        assert len(line.splitlines()) == 1
        assert line.startswith("level 12: 1024 agents  warmup 123 s  123456 done")
        # at ordinary sizes every figure fits; the label (printed above) is what gets cut
        view.tick(Live(level=2, agents=4, phase="window", elapsed=12.0, completed=10,
                       inflight=4, p25_speed=54.3, p95_ttft=0.74))
        rendered = Console(width=80, file=io.StringIO(), color_system=None)
        rendered.print(view._live.renderable)
        line = rendered.file.getvalue().rstrip("\n")  # type: ignore[attr-defined]
        assert line.startswith("level 3: 4 agents  window 12 s  10 done  4 in flight  "
                               "P25 54.3 tok/s  P95 0.74 s")
        assert len(line) <= 80


def test_level_lines_show_the_statistics_the_tiers_check() -> None:
    lv = quick_start_like().levels[0]
    lv.verdicts = [TierVerdict(floor=25, ttft=0.45, passed=False, speed=21.5, ttft_at=2.25)]
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    with View(console, label="simulated h100", stats=(1.0, 99.0)) as view:
        view.level(lv)
    lines = buf.getvalue().splitlines()
    assert "P1 output speed · P99 time to first token" in lines[1]
    assert lines[2] == "level 1: 1 agent  P1 21.5 tok/s  P99 2.25 s  0 ok  ✗25"
