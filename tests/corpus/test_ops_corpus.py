"""Whole-corpus operations: merge, filter, sample, salvage, validate, and safe outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_samples import SHARED, Built, build, chains_by_id

from corpus import CorpusError, Header, Keys, Reader, Turn, Writer, ops, sidecar
from corpus.frames import Frame, compress, pack, scan
from corpus.records import MAGIC, Close, Open, Turns
from corpus.summary import info
from corpus.validate import validate


def _chains(built: Built, ids: list[int] | None = None) -> dict[int, list[list[str]]]:
    """Expected chains by output session id for the input sessions `ids` (in output order)."""
    ids = list(range(len(built.turns))) if ids is None else ids
    return {out: built.chains[sid] for out, sid in enumerate(ids)}


def _one_to_one(seen: dict[int, set[str]]) -> None:
    assert all(len(chains) == 1 for chains in seen.values()), "an id stands for two prefixes"
    owners: dict[str, int] = {}
    for i, chains in seen.items():
        (chain,) = chains
        assert owners.setdefault(chain, i) == i, f"{chain} got two ids"


# -- merge ------------------------------------------------------------------------------------


def test_merge_with_one_key_unifies_block_ids(tmp_path: Path) -> None:
    a = build(tmp_path / "a.zst", sessions=8, seed=1, tag="a")
    key = Keys.open(tmp_path / "a.zst", create=False).key
    b = build(
        tmp_path / "b.zst",
        sessions=5,
        seed=2,
        tag="b",
        keys=Keys.create(tmp_path / "b.zst", key=key),
    )
    result = ops.merge([tmp_path / "a.zst", tmp_path / "b.zst"], tmp_path / "m.zst")
    assert (result.sessions, result.keys) == (13, True)
    expected = _chains(a) | {8 + k: v for k, v in _chains(b).items()}
    seen = chains_by_id(tmp_path / "m.zst", expected)
    _one_to_one(seen)
    shared = {next(iter(c)) for c in seen.values()} & {"system", "system/tools"}
    assert shared == {"system", "system/tools"}  # the common prefix is one id in both inputs
    assert validate(tmp_path / "m.zst").ok
    # the output's sidecar continues the same id space
    out_keys = Keys.open(tmp_path / "m.zst", create=False)
    assert out_keys.key == key
    assert out_keys.id(out_keys.mac(b"system")) == 0


def test_merge_with_different_keys_needs_disjoint(tmp_path: Path) -> None:
    a = build(tmp_path / "a.zst", sessions=6, seed=1)
    b = build(tmp_path / "b.zst", sessions=4, seed=2)
    with pytest.raises(CorpusError, match="--disjoint"):
        ops.merge([tmp_path / "a.zst", tmp_path / "b.zst"], tmp_path / "m.zst")
    assert not (tmp_path / "m.zst").exists()
    result = ops.merge([tmp_path / "a.zst", tmp_path / "b.zst"], tmp_path / "m.zst", disjoint=True)
    assert (result.sessions, result.keys) == (10, False)
    assert not sidecar(tmp_path / "m.zst").exists()
    ids_a = chains_by_id(tmp_path / "m.zst", _chains(a))
    ids_b = chains_by_id(tmp_path / "m.zst", {6 + k: v for k, v in _chains(b).items()})
    _one_to_one(ids_a)
    _one_to_one(ids_b)
    assert ids_a.keys().isdisjoint(ids_b.keys())  # same labels, different keys: never shared
    assert validate(tmp_path / "m.zst").ok


def test_merge_shifts_starts_onto_the_earliest_origin(tmp_path: Path) -> None:
    ka = Keys.create(tmp_path / "a.zst", epoch=1000.0)
    build(tmp_path / "a.zst", sessions=2, seed=1, keys=ka)
    build(
        tmp_path / "b.zst",
        sessions=2,
        seed=2,
        keys=Keys.create(tmp_path / "b.zst", key=ka.key, epoch=1010.0),
    )
    starts_b = [s.start for s in Reader(tmp_path / "b.zst").sessions()]
    ops.merge([tmp_path / "b.zst", tmp_path / "a.zst"], tmp_path / "m.zst")
    merged = {s.id: s.start for s in Reader(tmp_path / "m.zst").sessions()}
    assert [merged[0], merged[1]] == pytest.approx([s + 10.0 for s in starts_b])
    assert Keys.open(tmp_path / "m.zst", create=False).epoch == 1000.0


def test_merge_keeps_each_inputs_domain(tmp_path: Path) -> None:
    build(tmp_path / "a.zst", sessions=3, seed=1, domain="coding")
    build(tmp_path / "b.zst", sessions=2, seed=2, domain="legal")
    ops.merge([tmp_path / "a.zst", tmp_path / "b.zst"], tmp_path / "m.zst", disjoint=True)
    facts = info(tmp_path / "m.zst")
    assert facts.domain == "mixed"
    assert facts.domains == {"coding": 3, "legal": 2}
    result = ops.select(tmp_path / "m.zst", tmp_path / "legal.zst", domain="legal")
    assert result.sessions == 2
    assert {s.domain for s in Reader(tmp_path / "legal.zst").sessions()} == {"legal"}


def test_merge_refuses_different_block_sizes(tmp_path: Path) -> None:
    build(tmp_path / "a.zst", sessions=2, block_size=16)
    build(tmp_path / "b.zst", sessions=2, block_size=64)
    with pytest.raises(CorpusError, match="block_size"):
        ops.merge([tmp_path / "a.zst", tmp_path / "b.zst"], tmp_path / "m.zst", disjoint=True)


def test_merge_refuses_a_damaged_input(tmp_path: Path) -> None:
    build(tmp_path / "a.zst", sessions=4)
    data = (tmp_path / "a.zst").read_bytes()
    (tmp_path / "a.zst").write_bytes(data[:-3])
    with pytest.raises(CorpusError, match="corpus salvage"):
        ops.merge([tmp_path / "a.zst"], tmp_path / "m.zst")
    assert not list(tmp_path.glob(".m*"))  # no temporary left behind


# -- filter and sample ------------------------------------------------------------------------


def test_filter_by_model_and_turns(tmp_path: Path) -> None:
    built = build(tmp_path / "c.zst", sessions=20, seed=7)
    want = [
        sid
        for sid, meta in enumerate(built.sessions)
        if meta["model"] == "model-a" and 2 <= len(built.turns[sid]) <= 4
    ]
    result = ops.select(
        tmp_path / "c.zst", tmp_path / "f.zst", model="*-a", min_turns=2, max_turns=4
    )
    assert (result.sessions, result.of_sessions) == (len(want), 20)
    got = sorted(Reader(tmp_path / "f.zst", strict=True).sessions(), key=lambda s: s.id)
    assert [len(s.turns) for s in got] == [len(built.turns[sid]) for sid in want]
    assert [s.prefixes() and True for s in got]
    _one_to_one(chains_by_id(tmp_path / "f.zst", _chains(built, want)))
    parents = {s.id: s.parent for s in got}
    for out, sid in enumerate(want):  # a parent that was kept is renumbered, else dropped
        parent = built.sessions[sid]["parent"]
        expected = want.index(parent) if parent in want else None
        assert parents[out] == expected
    assert "filter: model=*-a" in Reader(tmp_path / "f.zst").header.notes
    assert validate(tmp_path / "f.zst").ok


def test_filtered_copy_keeps_the_id_space_of_its_source(tmp_path: Path) -> None:
    build(tmp_path / "c.zst", sessions=10, seed=3)
    ops.select(tmp_path / "c.zst", tmp_path / "f.zst", min_turns=3)
    src = Keys.open(tmp_path / "c.zst", create=False)
    out = Keys.open(tmp_path / "f.zst", create=False)
    assert out.key == src.key
    # any content gets the same digest in both, so later captures into the copy stay consistent
    assert set(out.digests()) <= set(src.digests())
    ops.select(tmp_path / "c.zst", tmp_path / "g.zst", min_turns=3, keys=False)
    assert not sidecar(tmp_path / "g.zst").exists()


def _tree(built: Built, root: int) -> set[int]:
    out = {root}
    grew = True
    while grew:
        grew = False
        for sid, meta in enumerate(built.sessions):
            if meta["parent"] in out and sid not in out:
                out.add(sid)
                grew = True
    return out


def test_sample_is_deterministic_and_brings_sub_agents(tmp_path: Path) -> None:
    built = build(tmp_path / "c.zst", sessions=40, seed=11)
    roots = [sid for sid, meta in enumerate(built.sessions) if meta["parent"] is None]
    assert len(roots) < 40, "the sample corpus needs sub-agents"
    first = ops.sample(tmp_path / "c.zst", tmp_path / "s1.zst", n=5, seed=42)
    again = ops.sample(tmp_path / "c.zst", tmp_path / "s2.zst", n=5, seed=42)
    other = ops.sample(tmp_path / "c.zst", tmp_path / "s3.zst", n=5, seed=43)

    def content(path: Path) -> list:
        return sorted((s.start, s.model, len(s.turns), s.parent) for s in Reader(path).sessions())

    assert content(tmp_path / "s1.zst") == content(tmp_path / "s2.zst")
    assert content(tmp_path / "s1.zst") != content(tmp_path / "s3.zst")
    assert first.sessions == again.sessions
    assert other.sessions >= 5
    # the kept sessions are exactly 5 whole trees
    starts = {round(s.start, 6) for s in Reader(tmp_path / "s1.zst").sessions()}
    picked = [r for r in roots if round(built.sessions[r]["start"], 6) in starts]
    assert len(picked) == 5
    assert first.sessions == sum(len(_tree(built, r)) for r in picked)
    assert validate(tmp_path / "s1.zst").ok


def test_sample_larger_than_the_corpus_keeps_everything(tmp_path: Path) -> None:
    build(tmp_path / "c.zst", sessions=6, seed=1)
    assert ops.sample(tmp_path / "c.zst", tmp_path / "s.zst", n=100, seed=0).sessions == 6


# -- salvage ----------------------------------------------------------------------------------


def _frames(path: Path) -> list[Frame]:
    return [f for f in scan(path) if isinstance(f, Frame)]


def test_salvage_of_a_cut_tail_keeps_the_readable_prefix(tmp_path: Path) -> None:
    built = build(tmp_path / "c.zst", sessions=12, seed=5)
    data = (tmp_path / "c.zst").read_bytes()
    last = _frames(tmp_path / "c.zst")[-1]
    recovered = []
    for end in (len(data) - 2, last.offset + (len(data) - last.offset) // 2, last.offset + 3):
        cut = tmp_path / f"cut{end}.zst"
        cut.write_bytes(data[:end])
        out = tmp_path / f"fixed{end}.zst"
        result = ops.salvage(cut, out)
        (damage,) = result.damage
        assert (damage.kind, damage.frame, damage.offset) == ("truncated", last.index, last.offset)
        assert validate(out).ok
        assert result.turns >= Reader(cut).table().n_turns
        recovered.append((result, info(out)))
    # only the checksum was missing: every record of the last frame comes back
    result, facts = recovered[0]
    assert result.records_recovered > 0
    assert facts.turns == sum(len(t) for t in built.turns)
    assert facts.unclosed_sessions == 0


def test_salvage_resyncs_after_a_corrupt_middle_frame(tmp_path: Path) -> None:
    built = build(tmp_path / "c.zst", sessions=30, seed=8)
    frames = _frames(tmp_path / "c.zst")
    middle = frames[len(frames) // 2]
    data = bytearray((tmp_path / "c.zst").read_bytes())
    data[middle.offset + 12] ^= 0xFF
    (tmp_path / "bad.zst").write_bytes(bytes(data))
    (tmp_path / "bad.zst.keys").write_bytes(sidecar(tmp_path / "c.zst").read_bytes())
    result = ops.salvage(tmp_path / "bad.zst", tmp_path / "fixed.zst")
    assert [d.kind for d in result.damage] == ["corrupt"]
    assert result.frames_kept == len(frames) - 1
    assert result.keys
    assert validate(tmp_path / "fixed.zst").ok
    # sessions opened after the damaged frame are back, whole
    opened_after = sorted(
        r.id for f in frames[middle.index + 1 :] for r in f.records if isinstance(r, Open)
    )
    assert opened_after
    fixed = {(s.start, s.model): s for s in Reader(tmp_path / "fixed.zst").sessions()}
    for sid in opened_after:
        meta = built.sessions[sid]
        s = fixed[(meta["start"], meta["model"])]
        assert [t.input for t in s.turns] == [t.input for t in built.turns[sid]]
    assert result.sessions < 30


def test_salvage_of_an_intact_file_copies_it(tmp_path: Path) -> None:
    build(tmp_path / "c.zst", sessions=5)
    result = ops.salvage(tmp_path / "c.zst", tmp_path / "copy.zst")
    assert result.damage == []
    assert (result.sessions, result.sessions_cut, result.turns_dropped) == (5, 0, 0)


# -- outputs ----------------------------------------------------------------------------------


def test_outputs_refuse_to_overwrite_unless_forced(tmp_path: Path) -> None:
    build(tmp_path / "c.zst", sessions=5)
    (tmp_path / "out.zst").write_bytes(b"precious")
    (tmp_path / "out.zst.keys").write_bytes(b"stale keys")
    with pytest.raises(CorpusError, match="already exists; pass --force"):
        ops.sample(tmp_path / "c.zst", tmp_path / "out.zst", n=1, seed=0)
    assert (tmp_path / "out.zst").read_bytes() == b"precious"
    ops.sample(tmp_path / "c.zst", tmp_path / "out.zst", n=1, seed=0, keys=False, force=True)
    assert Reader(tmp_path / "out.zst").header.source == "test"
    assert not sidecar(tmp_path / "out.zst").exists()  # a stale sidecar never survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zst", "c.zst.keys", "out.zst"]


def test_an_input_is_never_its_own_output(tmp_path: Path) -> None:
    build(tmp_path / "c.zst", sessions=3)
    before = (tmp_path / "c.zst").read_bytes()
    with pytest.raises(CorpusError, match="is also an input"):
        ops.select(tmp_path / "c.zst", tmp_path / "c.zst", force=True)
    assert (tmp_path / "c.zst").read_bytes() == before


# -- validate ---------------------------------------------------------------------------------


def _raw(path: Path, *records: object, block_size: int = 4) -> Path:
    body = pack([Header(magic=MAGIC, block_size=block_size), *records])  # type: ignore[list-item]
    path.write_bytes(compress(body, 3))
    return path


def _turns(*rows: tuple[int, Turn]) -> Turns:
    from corpus import columns

    return columns.encode(rows)


def test_validate_reports_each_broken_invariant(tmp_path: Path) -> None:
    path = _raw(
        tmp_path / "bad.zst",
        Open(id=0),
        Open(id=0),  # twice
        Open(id=1, parent=7, start=-2.0),  # unknown parent, negative start
        _turns(
            (0, Turn(t=0, input=8, output=1, blocks=(0, 1))),
            (0, Turn(t=-1, input=12, output=1, reuse=5, blocks=(2,))),  # reuse > 2
            (0, Turn(t=1, input=40, output=1, reuse=2, blocks=(3,))),  # 3 blocks for 40 tokens
            (5, Turn(t=0, input=1, output=1, blocks=(9,))),  # never opened
            (1, Turn(t=0, input=4, output=-3, blocks=(-1,))),  # negative output and block id
        ),
        Close(ids=[0, 0, 9]),
    )
    result = validate(path)
    assert not result.ok
    text = "\n".join(result.problems)
    for expected in (
        "session 0 is opened twice",
        "session 1 starts at -2.0",
        "session 1 names parent 7",
        "turn 1: reuses 5 blocks, previous turn has 2",
        "turn 2: 3 blocks for 40 input tokens (expected ⌈40/4⌉ = 10)",
        "turn of session 5, which was never opened",
        "negative t",
        "negative output",
        "1 negative block ids",
        "session 0 is closed twice",
        "close of session 9, which was never opened",
    ):
        assert expected in text
    assert "frame 1 at byte" in text or "frame 0 at byte 0" in text


def test_validate_accepts_what_the_writer_writes(tmp_path: Path) -> None:
    build(tmp_path / "c.zst", sessions=25, seed=9)
    result = validate(tmp_path / "c.zst")
    assert result.ok, result.problems
    assert (result.sessions, result.turns) == (25, Reader(tmp_path / "c.zst").table().n_turns)


def test_validate_reports_damage_with_the_salvage_hint(tmp_path: Path) -> None:
    build(tmp_path / "c.zst", sessions=5)
    data = (tmp_path / "c.zst").read_bytes()
    (tmp_path / "c.zst").write_bytes(data[:-5])
    result = validate(tmp_path / "c.zst")
    assert result.counts == {"frame": 1}
    assert "corpus salvage" in result.problems[0]


def test_info_counts_without_turn_objects(tmp_path: Path) -> None:
    built = build(tmp_path / "c.zst", sessions=9, seed=2, models=("m1",))
    facts = info(tmp_path / "c.zst")
    assert facts.sessions == 9
    assert facts.turns == sum(len(t) for t in built.turns)
    assert facts.input_tokens == sum(t.input for ts in built.turns for t in ts)
    assert facts.output_tokens == sum(t.output for ts in built.turns for t in ts)
    assert facts.block_size == 16
    assert facts.models == {"m1": 9}
    assert facts.sub_agents == sum(m["parent"] is not None for m in built.sessions)
    distinct = {b for ts in built.blocks for full in ts for b in full}
    assert facts.distinct_blocks == len(distinct)
    assert facts.distinct_blocks > len(SHARED)
    last = max(
        m["start"] + t.t for m, ts in zip(built.sessions, built.turns, strict=True) for t in ts
    )
    assert facts.time_span == pytest.approx(last - min(m["start"] for m in built.sessions))


def test_append_to_a_filtered_copy_stays_consistent(tmp_path: Path) -> None:
    build(tmp_path / "c.zst", sessions=6, seed=3)
    ops.select(tmp_path / "c.zst", tmp_path / "f.zst")
    with Writer.append(tmp_path / "f.zst") as w:
        ids = [w.keys.id(w.keys.mac(c.encode())) for c in ("system", "system/tools")]
    first = next(iter(Reader(tmp_path / "f.zst").sessions()))
    assert first.prefixes()[0][:2] == ids


def test_validate_flags_input_without_blocks_and_negative_reuse(tmp_path: Path) -> None:
    path = _raw(
        tmp_path / "bad.zst",
        Open(id=0),
        _turns(
            (0, Turn(t=0, input=1000, output=1)),  # tokens but no blocks at all
            (0, Turn(t=1, input=0, output=1)),  # no tokens, no blocks: fine
            (0, Turn(t=2, input=4, output=1, reuse=-1, blocks=(0,))),
        ),
        Close(ids=[0]),
    )
    text = "\n".join(validate(path).problems)
    assert "turn 0: 0 blocks for 1000 input tokens" in text
    assert "turn 1:" not in text
    assert "negative reuse" in text
