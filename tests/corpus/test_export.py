"""Exporters: Mooncake JSONL (session_id/delay extension) and WEKA JSON, and round trips through
the importers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus import CorpusError, Header, Reader, Session, Turn, Writer, exporters, importers
from corpus.exporters.mooncake import coarsen

FIXTURES = Path(__file__).parent / "fixtures"


def sessions(path: Path) -> list[Session]:
    return sorted(Reader(path).sessions(), key=lambda s: s.id)


def numbers(path: Path, *, timing: tuple[str, ...]) -> list[tuple[object, ...]]:
    """What a corpus says, sessions in start order, block ids renamed in first-seen order (ids
    are corpus-local)."""
    rename: dict[int, int] = {}
    out: list[tuple[object, ...]] = []
    for s in sorted(sessions(path), key=lambda s: (s.start, s.id)):
        turns = []
        for turn, blocks in zip(s.turns, s.prefixes(), strict=True):
            ids = tuple(rename.setdefault(b, len(rename)) for b in blocks)
            turns.append((turn.input, turn.output, ids, *(getattr(turn, name) for name in timing)))
        out.append((round(s.start, 6), s.parent is None, s.model, tuple(turns)))
    return out


# -- mooncake ---------------------------------------------------------------------------------


def test_mooncake_round_trip_keeps_the_numbers(tmp_path: Path) -> None:
    first = tmp_path / "a.zst"
    importers.run("mooncake", [FIXTURES / "mooncake"], first, keys=False)
    report = exporters.run("mooncake", first, tmp_path / "a.jsonl")
    second = tmp_path / "b.zst"
    importers.run("mooncake", [tmp_path / "a.jsonl"], second, keys=False)
    timing = ("t", "wait", "after")
    assert numbers(second, timing=timing) == numbers(first, timing=timing)
    assert (report.sessions, report.turns, report.files) == (6, 10, 1)
    assert report.warnings == []


def test_mooncake_rows_carry_session_id_then_timestamp_or_delay(tmp_path: Path) -> None:
    src = tmp_path / "a.zst"
    importers.run("mooncake", [FIXTURES / "mooncake" / "sessions.jsonl"], src, keys=False)
    exporters.run("mooncake", src, tmp_path / "a.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    standard = {"session_id", "input_length", "output_length", "hash_ids"}
    assert set(rows[0]) == standard | {"timestamp", "block_size", "context_length"}
    assert set(rows[1]) - {"extra_hash_ids"} == standard | {
        "delay",
        "context_length",
        "prefix_blocks",
    }
    assert [(r["session_id"], r.get("timestamp"), r.get("delay")) for r in rows] == [
        ("s0", 0, None),
        ("s0", None, 1500),
        ("s0", None, 250.5),
        ("s1", 500, None),
    ]
    # a shared first block, whole in s0 and partial in s1: AIPerf refuses an id at two sizes, so
    # s1 names it by a made-up id and says which corpus id that stands for
    ((alias, real),) = rows[3]["hash_id_aliases"]
    assert (rows[3]["hash_ids"][0], real) == (alias, rows[0]["hash_ids"][0])


def test_mooncake_later_rows_hold_what_the_turn_adds(tmp_path: Path) -> None:
    """A session replayer (AIPerf) sends each row after the conversation so far and its own
    replies: a row's input_length is the turn's input less the previous input and output, with
    as many hash_ids as those tokens need (AIPerf rejects more)."""
    src = tmp_path / "a.zst"
    importers.run("mooncake", [FIXTURES / "mooncake" / "sessions.jsonl"], src, keys=False)
    exporters.run("mooncake", src, tmp_path / "a.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    a = [r for r in rows if r["session_id"] == "s0"]
    framing = 2 * 5  # the chat template's tokens around the reply and the new message
    assert [r["input_length"] for r in a] == [
        600 - 5,  # the replayer frames the first row as one message
        1100 - 600 - 10 - framing,
        1200 - 1100 - 30 - framing,
    ]
    assert [r.get("context_length") for r in a] == [600, 1100, 1200]
    for r in a:
        assert len(r["hash_ids"]) == -(-r["input_length"] // 512)
    exporters.run("mooncake", src, tmp_path / "f.jsonl", framing=0)
    rows = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [r["input_length"] for r in rows if r["session_id"] == "s0"] == [600, 490, 70]
    assert "context_length" not in rows[0]
    whole = exporters.run("mooncake", src, tmp_path / "w.jsonl", whole=True)
    assert whole.turns == 4
    rows = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text().splitlines()]
    assert [r["input_length"] for r in rows if r["session_id"] == "s0"] == [600, 1100, 1200]


def test_mooncake_round_trip_keeps_block_size_and_sub_agents(tmp_path: Path) -> None:
    first = tmp_path / "a.zst"
    importers.run("weka", [FIXTURES / "weka"], first, keys=False)
    report = exporters.run("mooncake", first, tmp_path / "a.jsonl")
    assert report.warnings  # 64-token blocks: AIPerf must be told
    second = tmp_path / "b.zst"
    importers.run("mooncake", [tmp_path / "a.jsonl"], second, keys=False)
    assert Reader(second).header.block_size == Reader(first).header.block_size == 64

    def no_model(path: Path) -> list[tuple[object, ...]]:  # Mooncake has no model field
        return [(start, top, turns) for start, top, _, turns in numbers(path, timing=("wait",))]

    assert no_model(second) == no_model(first)
    parents = [s for s in sessions(second) if s.parent is not None]
    assert len(parents) == len([s for s in sessions(first) if s.parent is not None]) > 0


def test_mooncake_coarsens_chained_blocks_by_their_last_member() -> None:
    assert coarsen(list(range(16)), 8) == [7, 15]
    assert coarsen(list(range(17)), 8) == [7, 15, 16]
    assert coarsen(list(range(3)), 8) == [2]
    assert coarsen([4, 5], 1) == [4, 5]


def test_mooncake_export_of_a_64_token_corpus_warns_or_coarsens(tmp_path: Path) -> None:
    src = tmp_path / "w.zst"
    importers.run("weka", [FIXTURES / "weka"], src, keys=False)
    fine = exporters.run("mooncake", src, tmp_path / "fine.jsonl")
    assert fine.warnings == [
        "hash_ids use 64-token blocks, not Mooncake's 512: tell the replayer "
        "(AIPerf: --isl-block-size 64), or export with block size 512"
    ]
    coarse = exporters.run("mooncake", src, tmp_path / "coarse.jsonl", block_size=512)
    assert coarse.warnings == []
    for line in (tmp_path / "coarse.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert len(row["hash_ids"]) == -(-row["input_length"] // 512)
    with pytest.raises(CorpusError, match="multiples of 64"):
        exporters.run("mooncake", src, tmp_path / "bad.jsonl", block_size=100)
    assert not (tmp_path / "bad.jsonl").exists()


def test_mooncake_rows_are_grouped_by_session_in_start_order(tmp_path: Path) -> None:
    src = tmp_path / "c.zst"
    with Writer(src, Header(block_size=512), keys=False) as w:
        late = w.open_session(start=9.0)
        early = w.open_session(start=1.0)
        w.add_turn(late, Turn(t=0.0, input=10, output=1), [1])
        w.add_turn(early, Turn(t=0.5, input=20, output=2), [2])
        w.add_turn(early, Turn(t=3.0, input=30, output=3, wait=1.25), [2, 3])
        w.close_session(late)
        w.close_session(early)
    exporters.run("mooncake", src, tmp_path / "c.jsonl", framing=0)
    rows = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [(r["session_id"], r.get("timestamp"), r.get("delay")) for r in rows] == [
        (f"s{early}", 1500, None),
        (f"s{early}", None, 1250),
        (f"s{late}", 9000, None),
    ]


def _shrinking(path: Path) -> int:
    """A session whose third turn holds less than the second and its reply (a compaction): its
    first 512-token block is kept, the rest is new."""
    with Writer(path, Header(block_size=512), keys=False) as w:
        sid = w.open_session(start=0.0)
        w.add_turn(sid, Turn(t=0.0, input=1500, output=100), [1, 2, 3])
        w.add_turn(sid, Turn(t=5.0, input=1700, output=80, wait=1.0, after="tool"), [1, 2, 4, 5])
        w.add_turn(sid, Turn(t=9.0, input=900, output=50, wait=2.5, after="user"), [1, 6])
        w.add_turn(sid, Turn(t=12.0, input=1100, output=10, wait=0.5, after="tool"), [1, 7, 8])
        w.close_session(sid)
    return sid


def test_mooncake_a_shrunk_context_starts_a_conversation_with_its_whole_chain(
    tmp_path: Path,
) -> None:
    """A session replayer only appends: a turn that is not the conversation so far plus new
    tokens is sent as a new conversation holding its whole context and block chain (the same
    hash_ids laid out alike give the same synthesized text, so what it shares with the first
    row still hits the server's prefix cache)."""
    src = tmp_path / "a.zst"
    sid = _shrinking(src)
    report = exporters.run("mooncake", src, tmp_path / "a.jsonl")
    assert any("1 turns don't hold the turn before them" in w for w in report.warnings)
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["session_id"] for r in rows] == [f"s{sid}", f"s{sid}", f"s{sid}.1", f"s{sid}.1"]
    restart = rows[2]
    assert restart["is_restart"] is True  # as AIPerf's agentic-code generator marks one
    assert restart["continues"] == f"s{sid}"
    assert restart["continue_delay"] == 2500
    assert (restart["timestamp"], restart["input_length"]) == (9000, 900 - 5)
    assert restart["hash_ids"] == Reader(src).sessions().__next__().prefixes()[2]
    assert "delay" not in restart  # Dynamo refuses a delay on a session's first row
    assert rows[3]["input_length"] == 1100 - 900 - 50 - 2 * 5
    second = tmp_path / "b.zst"
    importers.run("mooncake", [tmp_path / "a.jsonl"], second, keys=False)
    # Mooncake has no durations: t accumulates delays, but a restart row carries its timestamp
    assert numbers(second, timing=("wait",)) == numbers(src, timing=("wait",))
    assert [t.t for t in sessions(second)[0].turns][2] == 9.0


def test_mooncake_separator_tokens_come_off_each_rows_last_block(tmp_path: Path) -> None:
    """AIPerf starts every block it synthesizes with a separator token that a server counting
    text sees as several: `separator` tokens per hash id come off the row, from its partial
    last block, and `context_length` keeps the whole for the round trip."""
    src = tmp_path / "a.zst"
    _shrinking(src)
    exporters.run("mooncake", src, tmp_path / "plain.jsonl")
    exporters.run("mooncake", src, tmp_path / "sep.jsonl", separator=6)
    plain = [json.loads(x) for x in (tmp_path / "plain.jsonl").read_text().splitlines()]
    sep = [json.loads(x) for x in (tmp_path / "sep.jsonl").read_text().splitlines()]
    for a, b in zip(plain, sep, strict=True):
        k = len(a["hash_ids"])
        assert b["hash_ids"] == a["hash_ids"]
        assert b["input_length"] == a["input_length"] - 6 * k
        assert (k - 1) * 512 < b["input_length"] <= k * 512  # what AIPerf accepts
    assert sep[0]["context_length"] == 1500
    second = tmp_path / "b.zst"
    importers.run("mooncake", [tmp_path / "sep.jsonl"], second, keys=False)
    assert numbers(second, timing=("wait",)) == numbers(src, timing=("wait",))


def test_mooncake_separator_leaves_a_full_last_block_alone(tmp_path: Path) -> None:
    src = tmp_path / "a.zst"
    with Writer(src, Header(block_size=512), keys=False) as w:
        a = w.open_session(start=0.0)
        w.add_turn(a, Turn(t=0.0, input=1024, output=5), [1, 2])
        w.close_session(a)
        b = w.open_session(start=1.0)
        w.add_turn(b, Turn(t=0.0, input=1030, output=5), [1, 2, 3])
        w.close_session(b)
    exporters.run("mooncake", src, tmp_path / "a.jsonl", separator=6)
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    # the first row ends on a whole block (AIPerf refuses an id at two sizes: it stays 512);
    # the second's last block has 6 tokens and keeps one of them (18 would be due)
    assert [r["input_length"] for r in rows] == [1024, 1025]


def test_mooncake_what_a_row_cannot_take_off_comes_off_the_next(tmp_path: Path) -> None:
    """Every later request re-sends the rows before it, so a row whose last block is too small
    to lose its share passes the rest to the next row of its conversation."""
    src = tmp_path / "a.zst"
    with Writer(src, Header(block_size=512), keys=False) as w:
        a = w.open_session(start=0.0)
        w.add_turn(a, Turn(t=0.0, input=1030, output=10), [1, 2, 3])
        w.add_turn(a, Turn(t=1.0, input=1350, output=10, wait=0.5), [1, 2, 4])
        w.close_session(a)
    exporters.run("mooncake", src, tmp_path / "a.jsonl", separator=6)
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    # first row: 5 framing + 3 × 6 due, its 6-token last block gives 5; the next takes 18 + 6
    assert [r["input_length"] for r in rows] == [1025, 1350 - 1030 - 10 - 10 - 24]
    second = tmp_path / "b.zst"
    importers.run("mooncake", [tmp_path / "a.jsonl"], second, keys=False)
    assert numbers(second, timing=("wait",)) == numbers(src, timing=("wait",))


# -- weka -------------------------------------------------------------------------------------


def test_weka_round_trip_keeps_sessions_sub_agents_and_timing(tmp_path: Path) -> None:
    first = tmp_path / "a.zst"
    importers.run("weka", [FIXTURES / "weka"], first, keys=False)
    report = exporters.run("weka", first, tmp_path / "traces")
    assert sorted(p.name for p in (tmp_path / "traces").iterdir()) == [
        "trace_0000.json",
        "trace_0003.json",
    ]
    assert (report.sessions, report.turns, report.files) == (4, 8, 2)
    second = tmp_path / "b.zst"
    importers.run("weka", [tmp_path / "traces"], second, keys=False)
    timing = ("t", "wait", "after", "ttft", "duration", "stop")
    assert numbers(second, timing=timing) == numbers(first, timing=timing)
    parents = [s.parent for s in sessions(second)]
    assert parents == [None, 0, 0, None]


def test_weka_export_writes_kv_cache_tester_fields(tmp_path: Path) -> None:
    src = tmp_path / "a.zst"
    importers.run("weka", [FIXTURES / "weka" / "trace_0001.json"], src, keys=False)
    exporters.run("weka", src, tmp_path / "traces")
    trace = json.loads((tmp_path / "traces" / "trace_0000.json").read_text())
    assert trace["block_size"] == 64
    assert trace["hash_id_scope"] == "local"
    assert trace["models"] == ["claude-opus-4-5", "claude-haiku-4-5"]
    kinds = [r["type"] for r in trace["requests"]]
    assert kinds == ["n", "subagent", "n", "n", "subagent"]
    first = trace["requests"][0]
    assert (first["in"], len(first["hash_ids"]), first["stop"]) == (200, 3, "tool_use")
    sub = trace["requests"][1]
    assert (sub["t"], sub["duration_ms"], sub["status"]) == (10.0, 5000, "completed")
    assert [r["type"] for r in sub["requests"]] == ["n", "s"]
    assert sub["requests"][1]["ttft"] == 0.5
    assert "ttft" not in sub["requests"][0]


def test_weka_export_needs_a_new_folder(tmp_path: Path) -> None:
    src = tmp_path / "a.zst"
    importers.run("weka", [FIXTURES / "weka"], src, keys=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(CorpusError, match="not an empty folder"):
        exporters.run("weka", src, tmp_path / "full")
    with pytest.raises(CorpusError, match="declare their own block size"):
        exporters.run("weka", src, tmp_path / "new", block_size=512)
    with pytest.raises(
        CorpusError, match="expected one of agentic-mooncake, agentperf-local, mooncake, weka"
    ):
        exporters.run("bailian", src, tmp_path / "new")


def test_content_corpus_exports_map_openai_stop_reasons(tmp_path: Path) -> None:
    src = tmp_path / "c.zst"
    importers.run("mini-swe-agent", [FIXTURES / "miniswe"], src, keys=False)
    exporters.run("weka", src, tmp_path / "traces")
    trace = json.loads((tmp_path / "traces" / "trace_0000.json").read_text())
    assert [r["stop"] for r in trace["requests"]] == ["end_turn"] * 3
    assert [r["input_types"] for r in trace["requests"]] == [["text"], ["tool_result"], ["text"]]


# -- agentperf-local --------------------------------------------------------------------------


def test_agentperf_local_rows_hold_each_turns_input_exactly(tmp_path: Path) -> None:
    """agentperf-local sends each row's messages as written: counted with the chat template's 5
    tokens per message, a row holds its turn's input, also where the context shrank."""
    from corpus.tokenizer import count

    src = tmp_path / "c.zst"
    with Writer(src, Header(), keys=False) as w:
        sid = w.open_session(start=0.0, agent="demo")
        turns = [
            Turn(t=0.0, input=1200, output=80),
            Turn(t=1.0, input=1500, output=300, reasoning=250, wait=0.5, tool_calls=("bash",)),
            Turn(t=2.0, input=1600, output=40, wait=0.25),  # the reasoning left the context
            Turn(t=3.0, input=700, output=10, wait=1.0),  # a compaction
        ]
        for turn in turns:
            w.add_turn(sid, turn, list(range(-(-turn.input // 64))))
        w.close_session(sid)
    report = exporters.run("agentperf-local", src, tmp_path / "out")
    assert (report.sessions, report.turns, report.files) == (1, 4, 2)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["mode"] == "single_user_agentic_replay"
    (task,) = manifest["tasks"]
    assert (task["model_calls"], task["tool_calls"], task["total_recorded_tool_delay_ms"]) == (
        4,
        1,
        1750,
    )
    rows = [json.loads(x) for x in (tmp_path / "out" / task["trace"]).read_text().splitlines()]
    for row, turn in zip(rows, turns, strict=True):
        sent = sum(count(m["content"]) + 5 for m in row["messages"])
        assert sent == turn.input
        assert row["target_output_tokens"] == row["max_output_tokens"] == turn.output
    assert [len(r["messages"]) for r in rows] == [1, 3, 5, 1]
    assert [r["simulated_tool_delay_ms_after"] for r in rows] == [500, 250, 1000, 0]
    assert rows[1]["recorded_tool_calls_after"] == [{"duration_ms": 250, "tool_name": "bash"}]
    assert rows[2]["messages"][:3] == rows[1]["messages"]  # each row extends the one before


@pytest.mark.parametrize("name", ["swe-bench", "claude-code"])
def test_mooncake_export_of_a_reference_corpus_keeps_aiperfs_block_rules(
    tmp_path: Path, name: str
) -> None:
    """What AIPerf 0.13's prompt synthesis refuses (`_build_token_sequence`): a row's tokens
    must fill all its hash blocks but the last, and a hash id has one size everywhere. Dynamo's
    loader refuses a delay on a session's first row."""
    from corpus import reference

    out = tmp_path / "a.jsonl"
    exporters.run("mooncake", reference.path(name), out, block_size=512, separator=6)
    size: dict[int, int] = {}
    seen: set[str] = set()
    restarts = 0
    for line in out.read_text().splitlines():
        row = json.loads(line)
        ids, n = row["hash_ids"], row["input_length"]
        assert ids
        assert (len(ids) - 1) * 512 < n <= len(ids) * 512
        for k, h in enumerate(ids):
            tokens = 512 if k < len(ids) - 1 else n - k * 512
            assert size.setdefault(h, tokens) == tokens, (row, h)
        if row["session_id"] not in seen:
            seen.add(row["session_id"])
            assert "delay" not in row
            assert "timestamp" in row
            restarts += bool(row.get("is_restart"))
    assert restarts > 0
    if name == "swe-bench":  # made-up ids and restarts come back as the corpus's 512-token blocks
        back = tmp_path / "b.zst"
        importers.run("mooncake", [out], back, keys=False)

        def shape(path: Path, factor: int) -> list[tuple[object, ...]]:
            rename: dict[int, int] = {}
            return [
                tuple(
                    (t.input, t.output, t.wait, tuple(rename.setdefault(b, len(rename)) for b in c))
                    for t, c in zip(
                        s.turns, (coarsen(p, factor) for p in s.prefixes()), strict=True
                    )
                )
                for s in sorted(sessions(path), key=lambda s: (s.start, s.id))
            ]

        bs = Reader(reference.path(name)).header.block_size
        assert shape(back, 1) == shape(reference.path(name), 512 // bs)
