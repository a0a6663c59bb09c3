"""Hash-only importers (Mooncake JSONL, WEKA / kv-cache-tester JSON) on small hand-made files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard

from corpus import Reader, Session, SourceError, importers

FIXTURES = Path(__file__).parent / "fixtures"


def load(tmp_path: Path, fmt: str, *sources: Path, **kw: object) -> tuple[list[Session], object]:
    out = tmp_path / f"{fmt}.zst"
    report = importers.run(fmt, list(sources), out, keys=False, **kw)  # type: ignore[arg-type]
    return sorted(Reader(out).sessions(), key=lambda s: s.id), report


# -- mooncake ---------------------------------------------------------------------------------


def test_mooncake_chains_requests_that_extend_a_sessions_private_prefix(tmp_path: Path) -> None:
    sessions, report = load(tmp_path, "mooncake", FIXTURES / "mooncake" / "chat.jsonl")
    assert [len(s.turns) for s in sessions] == [3, 1, 1, 1]
    conv = sessions[0]
    assert [t.input for t in conv.turns] == [1200, 1800, 2100]
    assert [t.t for t in conv.turns] == [0.0, 5.0, 9.0]
    assert [t.wait for t in conv.turns] == [0.0, 5.0, 4.0]  # arrival gaps: no durations
    assert [t.after for t in conv.turns] == ["start", "user", "user"]
    assert all(t.duration is None for t in conv.turns)
    # the prefix every request shares (block 0) is no evidence of a continuation
    assert sessions[2].start == 1.0
    assert sessions[3].turns[0].input == 1536


def test_mooncake_keeps_block_ids_and_their_sharing(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "mooncake", FIXTURES / "mooncake" / "chat.jsonl")
    full = [s.prefixes() for s in sessions]
    first = full[0][0]
    assert len(first) == 3  # ceil(1200 / 512): the last block is partial
    assert full[0][1][:2] == first[:2]  # [0, 1] shared by the chained turn
    assert {p[0][0] for p in full} == {first[0]}  # block 0 is the same block everywhere
    assert full[1][0][1] != full[3][0][2]


def test_mooncake_lists_bad_rows_and_imports_the_rest(tmp_path: Path) -> None:
    src = FIXTURES / "mooncake" / "chat.jsonl"
    _, report = load(tmp_path, "mooncake", src)
    assert report.turns == 6
    assert [s.split(": ", 1)[0] for s in report.skipped] == [f"{src}:5", f"{src}:6", f"{src}:9"]
    assert "invalid JSON" in report.skipped[0]
    assert "3 hash_ids need more than 100 input tokens" in report.skipped[1]
    assert "'input_length' is missing" in report.skipped[2]


def test_mooncake_session_ids_and_delays_define_sessions(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "mooncake", FIXTURES / "mooncake" / "sessions.jsonl")
    a, b = sessions
    assert (a.start, b.start) == (0.0, 0.5)
    assert [t.t for t in a.turns] == [0.0, 1.5, 1.7505]
    assert [t.wait for t in a.turns] == [0.0, 1.5, 0.2505]
    assert [t.output for t in a.turns] == [10, 30, 40]
    assert len(b.turns) == 1


def test_mooncake_refuses_another_block_size(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="can't be re-blocked to 64"):
        importers.run(
            "mooncake", [FIXTURES / "mooncake"], tmp_path / "x.zst", block_size=64, keys=False
        )
    assert not (tmp_path / "x.zst").exists()


def test_mooncake_ids_are_scoped_to_their_file(tmp_path: Path) -> None:
    src = FIXTURES / "mooncake" / "sessions.jsonl"
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(src.read_bytes())
    sessions, _ = load(tmp_path, "mooncake", src, copy)
    assert len(sessions) == 4
    assert sessions[0].prefixes()[0][0] != sessions[2].prefixes()[0][0]


def test_mooncake_header_says_what_it_is(tmp_path: Path) -> None:
    out = tmp_path / "m.zst"
    importers.run("mooncake", [FIXTURES / "mooncake" / "chat.jsonl"], out, keys=False)
    header = Reader(out).header
    assert header.block_size == 512
    assert header.source == "import:mooncake"
    assert "prefix" in header.notes


# -- weka -------------------------------------------------------------------------------------


def test_weka_sub_agents_become_child_sessions_started_when_launched(tmp_path: Path) -> None:
    sessions, report = load(tmp_path, "weka", FIXTURES / "weka" / "trace_0001.json")
    parent, explore, background = sessions
    assert parent.parent is None
    assert parent.start == 0.0
    assert explore.parent == parent.id
    assert background.parent == parent.id
    assert explore.start == 5.0  # finished at t=40 after 35 s
    assert background.start == 70.0  # async_launched: recorded at launch
    assert explore.model == "claude-haiku-4-5"
    assert parent.model == "claude-opus-4-5"
    assert {s.agent for s in sessions} == {"claude-code"}
    assert {s.api for s in sessions} == {"anthropic-messages"}
    assert report.sessions == 3
    assert report.turns == 6


def test_weka_turn_timing_comes_from_think_and_api_time(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "weka", FIXTURES / "weka" / "trace_0001.json")
    parent, explore, _ = sessions
    assert [t.t for t in parent.turns] == [0.0, 45.0, 60.0]
    assert [t.wait for t in parent.turns] == [0.0, 42.0, 12.0]  # the last lacks think_time
    assert [t.after for t in parent.turns] == ["start", "tool", "user"]
    assert [t.duration for t in parent.turns] == [2.5, 3.0, 1.5]
    assert [t.stop for t in parent.turns] == ["tool_use", "end_turn", None]
    assert explore.turns[1].ttft == 0.5
    assert explore.turns[0].ttft is None


def test_weka_partial_tail_is_a_block_of_its_own(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "weka", FIXTURES / "weka" / "trace_0001.json")
    parent, explore, _ = sessions
    p = parent.prefixes()
    assert [len(x) for x in p] == [4, 5, 7]  # 200 -> 3 full + tail; 320 -> 5 full; 400 -> 6 + tail
    assert p[1][:3] == p[0][:3]
    assert p[1][3] != p[0][3]
    # a sub-agent shares its parent's id space: hash id 1 is the same block
    assert explore.prefixes()[0][0] == p[0][0]


def test_weka_ids_are_scoped_per_trace(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "weka", FIXTURES / "weka")
    one = next(s for s in sessions if s.model == "claude-opus-4-5")
    two = next(s for s in sessions if s.model == "claude-sonnet-4-5")
    assert not set(one.prefixes()[0]) & set(two.prefixes()[0])
    assert len(two.prefixes()[0]) == 3  # 192 tokens: three full blocks, no tail


def test_weka_lists_contradictory_requests(tmp_path: Path) -> None:
    src = FIXTURES / "weka" / "trace_0001.json"
    _, report = load(tmp_path, "weka", src)
    assert report.skipped == [
        f"{src}: requests[5]: 7 hash_ids of 64 tokens exceed 'in' = 100 tokens; request left out"
    ]


def test_weka_rejects_a_file_that_is_not_a_trace(tmp_path: Path) -> None:
    bad = tmp_path / "trace_9999.json"
    bad.write_text(json.dumps([{"t": 0}]))
    with pytest.raises(SourceError, match="expected a kv-cache-tester trace"):
        importers.run("weka", [bad], tmp_path / "x.zst", keys=False)
    assert not (tmp_path / "x.zst").exists()


def test_weka_keeps_the_traces_block_size_and_refuses_others(tmp_path: Path) -> None:
    src = FIXTURES / "weka" / "trace_0002.json"
    with pytest.raises(SourceError, match="64-token hash blocks"):
        importers.run("weka", [src], tmp_path / "x.zst", block_size=16, keys=False)
    data = json.loads(src.read_text())
    data["block_size"] = 32
    other = tmp_path / "trace_0003.json"
    other.write_text(json.dumps(data))
    with pytest.raises(SourceError, match="uses 32-token blocks, this import writes 64"):
        importers.run("weka", [src, other], tmp_path / "y.zst", keys=False)
    sessions, _ = load(tmp_path, "weka", other)
    assert [len(p) for p in sessions[0].prefixes()] == [6, 9]  # 192 / 32; 260 / 32 + tail


def test_weka_request_with_non_integer_hash_ids_is_left_out(tmp_path: Path) -> None:
    src = tmp_path / "trace_0009.json"
    good = {"t": 0.0, "in": 128, "out": 5, "hash_ids": [1, 2]}
    bad = {"t": 5.0, "in": 128, "out": 5, "hash_ids": [[1], 2]}
    src.write_text(
        json.dumps(
            {
                "id": "trace_0009",
                "block_size": 64,
                "hash_id_scope": "local",
                "requests": [good, bad],
            }
        )
    )
    _, report = load(tmp_path, "weka", src)
    assert report.skipped == [
        f"{src}: requests[1]: 'hash_ids' should be a list of integers; request left out"
    ]


# -- bailian ----------------------------------------------------------------------------------


def test_bailian_chains_become_sessions_with_16_token_blocks(tmp_path: Path) -> None:
    src = FIXTURES / "bailian" / "trace.jsonl"
    out = tmp_path / "b.zst"
    report = importers.run("bailian", [src], out, keys=False)
    assert Reader(out).header.block_size == 16
    chain, single = sorted(Reader(out).sessions(), key=lambda s: s.start)
    assert [t.input for t in chain.turns] == [40, 190, 250]  # by turn, not file order
    assert [round(t.t, 3) for t in chain.turns] == [0.0, 8.886, 19.136]
    assert [round(t.wait, 3) for t in chain.turns] == [0.0, 8.886, 10.25]
    assert round(single.start, 3) == 0.386
    first, second, third = chain.prefixes()
    assert second[:2] == first[:2]
    assert second[2] != first[2]
    assert third[: len(second)] == second
    assert len(third) == 16  # ceil(250 / 16)
    assert single.prefixes()[0][0] == first[0]  # the same block id in the file: shared
    assert [s.split(": ", 1)[0] for s in report.skipped] == [f"{src}:5", f"{src}:6"]
    with pytest.raises(SourceError, match="can't be re-blocked"):
        importers.run("bailian", [src], tmp_path / "c.zst", block_size=64)


# -- otel -------------------------------------------------------------------------------------


def test_otel_agents_become_sessions_and_nested_agents_sub_agents(tmp_path: Path) -> None:
    out = tmp_path / "o.zst"
    report = importers.run("otel", [FIXTURES / "otel"], out, keys=False)
    main, helper, chat = sorted(Reader(out).sessions(), key=lambda s: s.start)
    assert (main.agent, helper.agent, helper.parent) == ("coder", "helper", main.id)
    assert main.parent is None
    assert (main.api, chat.api, main.model) == ("anthropic-messages", "openai-chat", main.model)
    assert [t.input for t in main.turns] == [3000, 3200, 3400]
    assert [t.output for t in main.turns] == [40, 60, 90]
    assert [t.after for t in main.turns] == ["start", "tool", "tool"]
    assert [t.tool_calls for t in main.turns] == [("bash",), ("Task",), ()]
    assert [t.wait for t in main.turns] == pytest.approx([0.0, 1.2, 7.1])
    assert [t.ttft for t in main.turns] == [0.8, 0.3, None]
    assert [t.stop for t in main.turns] == ["tool_calls", "tool_calls", "end_turn"]
    assert helper.start == pytest.approx(4.8)
    assert helper.turns[0].tool_calls[0].startswith("tool-")  # a private tool name
    # one conversation id across traces; input reported without its cache read is summed
    assert [t.input for t in chat.turns] == [800, 810]
    assert [t.after for t in chat.turns] == ["start", "user"]
    assert report.skipped[0].startswith(f"{FIXTURES / 'otel' / 'collector.jsonl'}:3:")


def test_otel_blocks_reuse_what_the_cache_read_covers(tmp_path: Path) -> None:
    out = tmp_path / "o.zst"
    importers.run("otel", [FIXTURES / "otel"], out, keys=False, block_size=64)
    for s in Reader(out).sessions():
        prefixes = s.prefixes()
        for k in range(1, len(s.turns)):
            a, b = prefixes[k], prefixes[k - 1]
            pairs = enumerate(zip(a, b, strict=False))
            shared = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
            assert shared == (s.turns[k].usage_cached or 0) // 64
    with open(out, "rb") as f:
        body = b"".join(zstandard.ZstdDecompressor().read_to_iter(f))
    for secret in (b"SECRET", b"coding-agent", b"conv-"):
        assert secret not in body


# -- dynamo -----------------------------------------------------------------------------------


def test_dynamo_lanes_become_sessions_with_tool_waits(tmp_path: Path) -> None:
    src = FIXTURES / "dynamo" / "trace.jsonl"
    out = tmp_path / "d.zst"
    report = importers.run("dynamo", [src], out, keys=False)
    planner, researcher = sorted(Reader(out).sessions(), key=lambda s: s.start)
    assert researcher.parent == planner.id
    assert planner.parent is None
    assert (planner.agent, planner.model) == ("deep_research", "my-model")
    assert [t.input for t in planner.turns] == [2000, 2300, 2600]
    assert [t.usage_cached for t in planner.turns] == [0, 1984, 2240]
    assert [t.t for t in planner.turns] == pytest.approx([0.0, 1.6, 9.0])
    assert [t.wait for t in planner.turns] == pytest.approx([0.0, 0.6, 6.5])
    assert [t.after for t in planner.turns] == ["start", "tool", "user"]
    assert planner.turns[0].tool_calls == ("web_search",)  # the terminal record, once
    assert [t.ttft for t in planner.turns] == pytest.approx([0.08, 0.06, 0.09])
    assert researcher.start == pytest.approx(3.0)
    assert researcher.turns[1].after == "tool"
    assert researcher.turns[0].tool_calls[0].startswith("tool-")
    one, two, three = planner.prefixes()
    assert two[:31] == one[:31]  # 1984 cached tokens = 31 blocks of 64
    assert two[31] != one[31]
    assert report.skipped == [
        f"{src}:9: expected schema 'dynamo.agent.trace.v1', found 'other.trace.v9'; "
        "record left out"
    ]
    with open(out, "rb") as f:
        body = b"".join(zstandard.ZstdDecompressor().read_to_iter(f))
    assert b"SECRET" not in body


# -- tracelab ---------------------------------------------------------------------------------


def test_tracelab_rounds_become_sessions_and_agent_windows_sub_agents(tmp_path: Path) -> None:
    src = FIXTURES / "tracelab" / "rounds.jsonl"
    out = tmp_path / "t.zst"
    report = importers.run("tracelab", [src], out, keys=False)
    main, sub, codex = sorted(Reader(out).sessions(), key=lambda s: s.start)
    assert sub.parent == main.id
    assert (main.parent, codex.parent) == (None, None)
    assert (main.agent, codex.agent, codex.model) == ("claude-code", "codex", "gpt-5-codex")
    assert [t.input for t in main.turns] == [5000, 5400]
    assert [t.output for t in main.turns] == [120, 80 + 300]
    assert main.turns[1].reasoning == 300
    assert [t.after for t in main.turns] == ["start", "tool"]
    assert [t.wait for t in main.turns] == pytest.approx([0.0, 28.5])
    assert [t.duration for t in main.turns] == pytest.approx([2.0, 2.5])
    assert main.turns[0].tool_calls == ("Agent",)
    assert main.turns[0].stop == "tool_use"
    assert sub.start == pytest.approx(3.0)
    one, two = main.prefixes()
    assert two[:78] == one[:78]  # 4992 resident tokens = 78 blocks of 64
    assert two[78] != one[78]
    assert report.skipped == [f"{src}:6: round has no timing_events time stamp; left out"]
    with open(out, "rb") as f:
        body = b"".join(zstandard.ZstdDecompressor().read_to_iter(f))
    assert b"SECRET" not in body
