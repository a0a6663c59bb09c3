"""Dynamo's Agentic Mooncake: import of v1 (wait_for / tool_wait_ms rows) and v2 (header and
typed dependency edges), export of v2, and the round trip through both."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from corpus import Reader, Session, SourceError, exporters, importers

FIXTURES = Path(__file__).parent / "fixtures"
AGENTIC = FIXTURES / "agentic-mooncake"


def sessions(path: Path) -> list[Session]:
    return sorted(Reader(path).sessions(), key=lambda s: (s.start, s.id))


def test_v1_rows_become_sessions_with_tool_waits_and_a_sub_agent(tmp_path: Path) -> None:
    out = tmp_path / "a.zst"
    report = importers.run(
        "agentic-mooncake", [AGENTIC / "legacy.jsonl"], out, keys=False, block_size=16
    )
    assert report.skipped == [
        f"{AGENTIC / 'legacy.jsonl'}:5: 'request_id' is missing; row left out"
    ]
    root, child = sessions(out)
    assert child.parent == root.id
    assert root.parent is None
    assert child.start == pytest.approx(0.2)
    got = [(t.input, t.output, t.t, t.wait, t.after) for t in root.turns]
    assert got == [
        (40, 5, 0.0, 0.0, "start"),
        (60, 6, 0.3, pytest.approx(0.2), "tool"),  # delay 100 + tool_wait_ms 100
        (80, 4, 0.6, 0.25, "user"),
    ]
    assert [len(b) for b in root.prefixes()] == [3, 4, 5]
    assert root.prefixes()[2][:4] == root.prefixes()[1]  # the shared prefix is kept
    assert [(t.input, t.output) for t in child.turns] == [(20, 7)]


def test_v2_header_sets_the_block_size_and_edges_set_waits(tmp_path: Path) -> None:
    out = tmp_path / "a.zst"
    importers.run("agentic-mooncake", [AGENTIC / "v2.jsonl"], out, keys=False)
    assert Reader(out).header.block_size == 16
    main, helper = sessions(out)
    assert helper.parent == main.id
    assert main.model == "m1"
    assert [(t.t, t.wait, t.duration) for t in main.turns] == [(0.0, 0.0, 0.5), (1.5, 1.0, 0.4)]
    assert (helper.start, helper.turns[0].duration) == (0.1, 0.3)
    with pytest.raises(SourceError, match="can't be re-blocked"):
        importers.run("agentic-mooncake", [AGENTIC / "v2.jsonl"], tmp_path / "b.zst", block_size=64)


def test_a_v3_header_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "v3.jsonl"
    lines = (AGENTIC / "v2.jsonl").read_text().splitlines()
    bad.write_text("\n".join([lines[0].replace('"version":2', '"version":3'), *lines[1:]]))
    with pytest.raises(SourceError, match=r"v3\.jsonl:1: Agentic Mooncake version 3"):
        importers.run("agentic-mooncake", [bad], tmp_path / "out.zst", keys=False)


# Dynamo's AgenticMooncakeRow (v2): required fields and their JSON types.
ROW = {
    "request_id": str,
    "play_id": str,
    "session_id": str,
    "model": str,
    "input_length": int,
    "output_length": int,
    "hash_ids": list,
    "not_before_ms": (int, float),
}
OPTIONAL = {"source_play_ordinal": int, "recorded_api_time_ms": (int, float), "dependencies": list}


def _check_v2(rows: list[dict[str, Any]], block_size: int) -> None:
    """What Dynamo's v2 loader requires, as its public source states it."""
    ids = {r["request_id"] for r in rows}
    assert len(ids) == len(rows)  # globally unique request ids
    ordinals: dict[str, int] = {}
    for row in rows:
        for name, kind in ROW.items():
            assert isinstance(row[name], kind), (name, row)
        for name, value in row.items():
            assert name in ROW or isinstance(value, OPTIONAL[name]), name
        assert row["play_id"]
        assert row["not_before_ms"] >= 0
        assert len(row["hash_ids"]) == math.ceil(row["input_length"] / block_size)
        assert (
            ordinals.setdefault(row["play_id"], row["source_play_ordinal"])
            == (row["source_play_ordinal"])
        )
        for dep in row.get("dependencies", []):
            assert set(dep) == {"request_id", "trigger", "delay_ms", "relation"}
            assert dep["request_id"] in ids
            assert dep["delay_ms"] >= 0
            assert dep["trigger"] in ("dispatch", "completion")
            assert dep["relation"] in ("sequence", "spawn", "join", "replay_barrier")
    assert sorted(set(ordinals.values())) == list(range(len(ordinals)))  # contiguous
    roots = [r["play_id"] for r in rows if not r.get("dependencies")]
    assert sorted(roots) == sorted(ordinals)  # one causal root per play


def test_v2_export_round_trips_sub_agents_blocks_and_timing(tmp_path: Path) -> None:
    first = tmp_path / "a.zst"
    importers.run("weka", [FIXTURES / "weka"], first, keys=False)
    report = exporters.run("agentic-mooncake", first, tmp_path / "a.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    header, rows = lines[0], lines[1:]
    assert header["schema"] == "dynamo.agentic_mooncake"
    assert header["version"] == 2
    assert header["block_size"] == 64
    assert header["hash_id_scope"] == "local"
    _check_v2(rows, 64)
    relations = [d["relation"] for r in rows for d in r.get("dependencies", [])]
    assert {"sequence", "spawn", "join"} <= set(relations)
    assert (report.sessions, report.turns) == (len(sessions(first)), len(rows))

    second = tmp_path / "b.zst"
    importers.run("agentic-mooncake", [tmp_path / "a.jsonl"], second, keys=False)
    assert Reader(second).header.block_size == 64

    def shape(path: Path) -> list[tuple[object, ...]]:
        rename: dict[int, int] = {}
        by_id = {s.id: s for s in sessions(path)}
        out = []
        for s in sorted(by_id.values(), key=lambda s: (s.parent is not None, s.start, s.id)):
            turns = tuple(
                (
                    t.input,
                    t.output,
                    round(t.t, 3),
                    round(t.wait, 3),
                    t.duration,
                    tuple(rename.setdefault(b, len(rename)) for b in blocks),
                )
                for t, blocks in zip(s.turns, s.prefixes(), strict=True)
            )
            parent = None if s.parent is None else by_id[s.parent].turns[0].input
            # plays carry no absolute start: only a sub-agent's offset in its play survives
            out.append((parent, round(s.start, 3) if s.parent is not None else None, turns))
        return out

    assert shape(second) == shape(first)


def test_agentic_export_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    src = tmp_path / "a.zst"
    importers.run("weka", [FIXTURES / "weka"], src, keys=False)
    with pytest.raises(Exception, match="whole requests"):
        exporters.run("agentic-mooncake", src, tmp_path / "x.jsonl", whole=True)
    exporters.run("agentic-mooncake", src, tmp_path / "c.jsonl", block_size=128)
    rows = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert rows[0]["block_size"] == 128
    _check_v2(rows[1:], 128)


def test_v1_export_writes_wait_for_branches_and_tool_waits(tmp_path: Path) -> None:
    first = tmp_path / "a.zst"
    importers.run("weka", [FIXTURES / "weka"], first, keys=False)
    report = exporters.run("agentic-mooncake", first, tmp_path / "a.jsonl", version=1)
    assert any("--trace-block-size 64" in w for w in report.warnings)
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert "schema" not in rows[0]  # v1 has no header
    by_id = {r["request_id"]: r for r in rows}
    for row in rows:
        assert row["prefix_reset"] is ("wait_for" not in row or row["request_id"].endswith(":0"))
        for dep in row.get("wait_for", []):
            assert dep in by_id
        for child in row.get("branches", []):
            assert row["request_id"] in by_id[child]["wait_for"]
    spawned = [r for r in rows if r.get("branches")]
    assert spawned
    assert all(r["session_id"] != by_id[r["branches"][0]]["session_id"] for r in spawned)
    assert any(r.get("tool_wait_ms") for r in rows)  # waits after a tool are tool waits

    second = tmp_path / "b.zst"
    importers.run("agentic-mooncake", [tmp_path / "a.jsonl"], second, keys=False, block_size=64)
    a, b = sessions(first), sessions(second)

    def blocks(ss: list[Session]) -> list[list[int]]:
        rename: dict[int, int] = {}
        return [[rename.setdefault(i, len(rename)) for i in p] for s in ss for p in s.prefixes()]

    assert blocks(a) == blocks(b)
    assert [(s.start, s.parent is None) for s in a] == [(s.start, s.parent is None) for s in b]
    for x, y in zip(a, b, strict=True):
        assert [(t.input, t.output, t.t, t.after) for t in x.turns] == [
            (t.input, t.output, t.t, t.after) for t in y.turns
        ]
        joined = {
            int(r["request_id"].split(":")[1]) for r in rows if len(r.get("wait_for", [])) > 1
        }
        for k, (tx, ty) in enumerate(zip(x.turns, y.turns, strict=True)):
            # a join row's delay runs from its latest dependency (v1 has one delay per row)
            if not (x.parent is None and k in joined):
                assert tx.wait == pytest.approx(ty.wait)
    with pytest.raises(Exception, match="versions 1 and 2"):
        exporters.run("agentic-mooncake", first, tmp_path / "c.jsonl", version=3)
