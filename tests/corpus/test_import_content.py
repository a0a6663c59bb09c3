"""Content importers (mini-swe-agent, agentperf-local, conversations, τ-bench) on synthetic
fixtures: token counts, timing rules, tool names, and that no text reaches the file."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pytest
import zstandard

from corpus import Reader, Session, importers
from corpus.errors import SourceError
from corpus.frames import scan
from corpus.importers import conversations
from corpus.keys import Keys
from corpus.records import Turns

FIXTURES = Path(__file__).parent / "fixtures"
AGENTPERF = FIXTURES / "agentperf"


def load(tmp_path: Path, fmt: str, *sources: Path, **kw: object) -> tuple[list[Session], object]:
    out = tmp_path / f"{fmt}.zst"
    report = importers.run(fmt, list(sources), out, keys=False, **kw)  # type: ignore[arg-type]
    return sorted(Reader(out).sessions(), key=lambda s: s.id), report


def raw_bytes(path: Path) -> bytes:
    """Every frame of a corpus, decompressed."""
    dctx = zstandard.ZstdDecompressor()
    out = b""
    with open(path, "rb") as f:
        for frame in dctx.read_to_iter(f):
            out += frame
    return out


# -- mini-swe-agent ---------------------------------------------------------------------------


def test_miniswe_maps_provider_usage_and_created_stamps(tmp_path: Path) -> None:
    sessions, report = load(tmp_path, "mini-swe-agent", FIXTURES / "miniswe")
    one, two = sessions
    assert one.model == "demo/model-x"
    assert one.agent == "mini-swe-agent"
    assert one.api == "openai-chat"
    assert (one.start, two.start) == (10.0, 0.0)  # created 1700000100 vs 1700000090
    a, b, c = one.turns
    assert (a.output, a.reasoning, a.usage_input, a.usage_cached) == (40, 25, 120, 0)
    assert (b.usage_cached, b.stop, c.stop) == (128, "stop", "stop")
    assert [t.t for t in one.turns] == [0.0, 5.0, 9.0]
    assert [t.wait for t in one.turns] == [0.0, 5.0, 4.0]
    assert [t.after for t in one.turns] == ["start", "tool", "user"]  # b gave no command
    assert [t.tool_calls for t in one.turns] == [("bash",), (), ("bash",)]
    assert c.usage_input is None
    assert c.output > 0
    assert report.sessions == 2
    assert report.turns == 4


def test_miniswe_each_call_sees_every_message_before_it(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "mini-swe-agent", FIXTURES / "miniswe")
    p = sessions[0].prefixes()
    inputs = [t.input for t in sessions[0].turns]
    assert inputs == sorted(inputs)
    assert [len(x) for x in p] == [math.ceil(n / 64) for n in inputs]
    assert p[1][: len(p[0]) - 1] == p[0][:-1]  # full blocks of the previous request reused
    # both trajectories share the system prompt's first block
    assert p[0][0] == sessions[1].prefixes()[0][0]


def test_content_imports_honour_the_block_size(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "mini-swe-agent", FIXTURES / "miniswe", block_size=16)
    assert Reader(tmp_path / "mini-swe-agent.zst").header.block_size == 16
    for turn, blocks in zip(sessions[0].turns, sessions[0].prefixes(), strict=True):
        assert len(blocks) == math.ceil(turn.input / 16)


# -- agentperf-local --------------------------------------------------------------------------


def test_agentperf_waits_are_the_tool_delays_recorded_after_the_previous_turn(
    tmp_path: Path,
) -> None:
    sessions, _ = load(tmp_path, "agentperf-local", AGENTPERF)
    (s,) = sessions
    assert s.agent == "demo-family"
    assert s.model == ""
    assert [t.output for t in s.turns] == [50, 40, 20]  # ordered by conversation_idx
    assert [t.usage_input for t in s.turns] == [300, 380, 420]
    assert [t.duration for t in s.turns] == [1.5, 1.0, 0.5]
    assert [t.wait for t in s.turns] == [0.0, 0.25, 0.1255]
    assert [t.t for t in s.turns] == [0.0, 1.75, 2.8755]
    assert [t.after for t in s.turns] == ["start", "tool", "tool"]
    assert [t.tool_calls for t in s.turns] == [("bash",), ("bash",), ()]


def test_agentperf_reads_the_default_replay_from_the_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "agentperf_local-0.0.0-py3-none-any.whl"
    member = "agentperf_local/data/replays/{}/traces/task_demo.jsonl"
    data = (AGENTPERF / "replays/agentperf-default-v1/traces/task_demo.jsonl").read_bytes()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member.format("agentperf-default-v1"), data)
        zf.writestr(member.format("other-replay"), data)
        zf.writestr("agentperf_local/__init__.py", "")
    from_wheel, report = load(tmp_path, "agentperf-local", wheel)
    assert report.sessions == 1  # only the default replay
    (tmp_path / "dir").mkdir()
    from_dir, _ = load(tmp_path / "dir", "agentperf-local", AGENTPERF)
    assert [t.input for t in from_wheel[0].turns] == [t.input for t in from_dir[0].turns]


# -- conversations ----------------------------------------------------------------------------


def test_conversations_use_timings_and_usage_when_given(tmp_path: Path) -> None:
    sessions, report = load(tmp_path, "conversations", FIXTURES / "conversations" / "chat.jsonl")
    full, plain = sessions
    assert (full.model, full.agent, full.start) == ("demo-chat-1", "demo-support", 12.5)
    a, b, c = full.turns
    assert [t.t for t in full.turns] == [0.0, 2.25, 30.0]
    assert [t.wait for t in full.turns] == [0.0, 0.75, 25.75]
    assert [t.after for t in full.turns] == ["start", "tool", "user"]
    assert (a.ttft, a.duration, b.duration, c.ttft) == (0.4, 1.5, 2.0, 0.3)
    assert (a.usage_input, a.output, a.usage_cached) == (95, 22, 0)
    assert b.usage_input is None
    assert b.output > 0
    assert (c.output, c.reasoning) == (9, 0)
    assert a.tool_calls
    assert a.tool_calls[0].startswith("tool-")
    assert plain.turns[0].t == 0.0
    assert plain.turns[0].wait == 0.0
    assert report.warnings == ["some sessions carry no timings: their t and wait are 0"]


def test_conversations_list_records_that_do_not_follow_the_schema(tmp_path: Path) -> None:
    src = FIXTURES / "conversations" / "chat.jsonl"
    _, report = load(tmp_path, "conversations", src)
    assert [s.split(": ", 1)[0] for s in report.skipped] == [f"{src}:3", f"{src}:4", f"{src}:5"]
    assert "'timings' holds 2 entries for 1 assistant messages" in report.skipped[0]
    assert "expected one JSON record per line" in report.skipped[1]
    assert "no assistant message" in report.skipped[2]


def test_tau_bench_trajectories_are_conversations(tmp_path: Path) -> None:
    src = FIXTURES / "conversations" / "gpt-4o-airline.json"
    sessions, report = load(tmp_path, "conversations", src, domain="support")
    assert len(sessions) == 2
    s = sessions[0]
    assert (s.model, s.agent, s.api) == ("gpt-4o", "tau-bench", "openai-chat")
    assert [t.after for t in s.turns] == ["start", "tool", "user", "tool"]
    assert len({t.tool_calls for t in s.turns if t.tool_calls}) == 2
    assert Reader(tmp_path / "conversations.zst").header.domain == "support"


def test_no_text_user_id_or_tool_name_reaches_the_file(tmp_path: Path) -> None:
    load(tmp_path, "conversations", FIXTURES / "conversations")
    body = raw_bytes(tmp_path / "conversations.zst")
    for secret in (
        b"secret_user",
        b"ZZ9PLZ",
        b"W-1234",
        b"lookup_order",
        b"cancel_reservation",
        b"Bonjour",
        b"helpdesk",
        b"Airline",
    ):
        assert secret not in body
    turns = [r for f in scan(tmp_path / "conversations.zst") for r in f.records]
    assert any(isinstance(r, Turns) for r in turns)


def test_a_record_converts_without_a_file() -> None:
    from corpus.anonymizer import Anonymizer

    anon = Anonymizer(Keys.ephemeral())
    rec = json.loads((FIXTURES / "conversations" / "chat.jsonl").read_text().splitlines()[1])
    sess = conversations.session(rec, anon)
    assert sess is not None
    assert len(sess.turns) == 1
    with pytest.raises(ValueError, match="'api' should be one of"):
        conversations.session({**rec, "api": "gopher"}, anon)


def test_a_top_level_system_prompt_counts_for_chat_records_too() -> None:
    """`system` given beside OpenAI-style messages is the system prompt the user meant, not a
    field to drop: the request is as if it were a leading system message."""
    from corpus.anonymizer import Anonymizer

    keys = Keys.ephemeral()
    turn = [
        {"role": "user", "content": "Summarize the ticket."},
        {"role": "assistant", "content": "Done."},
    ]
    system = "You are the support agent of a bank. " * 20
    split = conversations.session({"messages": turn, "system": system}, Anonymizer(keys))
    inline = conversations.session(
        {"messages": [{"role": "system", "content": system}, *turn]}, Anonymizer(keys)
    )
    bare = conversations.session({"messages": turn}, Anonymizer(keys))
    assert split is not None
    assert inline is not None
    assert bare is not None
    (s_turn, s_blocks), (i_turn, i_blocks) = split.turns[0], inline.turns[0]
    assert s_turn.input == i_turn.input > bare.turns[0][0].input + 100
    assert s_blocks == i_blocks


def test_conversations_refuse_other_importers_data_naming_the_right_one(tmp_path: Path) -> None:
    """agentperf-local rows and mini-swe-agent trajectories hold `messages` too; read as
    conversations they would be misread, so each is refused with file:line and the importer."""
    rows = AGENTPERF / "replays" / "agentperf-default-v1" / "traces"
    with pytest.raises(
        SourceError, match=r"\.jsonl:1: unknown field.*corpus import agentperf-local"
    ):
        load(tmp_path, "conversations", rows)
    traj = next((FIXTURES / "miniswe").rglob("*.traj.json"))
    with pytest.raises(SourceError, match=r"unknown field.*'info'.*corpus import mini-swe-agent"):
        load(tmp_path, "conversations", traj)
    mixed = tmp_path / "mixed.jsonl"
    good = (FIXTURES / "conversations" / "chat.jsonl").read_text().splitlines()[0]
    mixed.write_text(good + "\n" + json.dumps({"messages": [], "extra": 1}) + "\n")
    _, report = load(tmp_path, "conversations", mixed)
    assert report.skipped[0].startswith(f"{mixed}:2: unknown field(s) 'extra'; a conversation")


def test_conversations_carry_stop_reasons_and_sub_agent_parents(tmp_path: Path) -> None:
    src = tmp_path / "tree.jsonl"
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    records = [
        {"id": "main", "messages": msgs, "stop": ["stop"]},
        {"id": "helper", "parent": "main", "messages": msgs, "stop": [None]},
        {"parent": "nobody", "messages": msgs},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    sessions, report = load(tmp_path, "conversations", src)
    main, helper = sessions
    assert main.turns[0].stop == "stop"
    assert helper.turns[0].stop is None
    assert (main.parent, helper.parent) == (None, main.id)
    assert report.skipped == [
        f"{src}:3: 'parent' 'nobody' is not the id of an earlier record; put the parent "
        "conversation first; record left out"
    ]
