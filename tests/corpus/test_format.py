"""The file format: round trips, the columnar view, foreign and future files, fuzzing."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import msgspec
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import CorpusError, FormatError, Header, Reader, Session, Turn, Writer
from corpus.columns import COLUMNS, quantize
from corpus.frames import Frame, compress, pack, scan
from corpus.records import AFTER, MAGIC, MAX_BATCH, PLAIN, Close, Open, Turns
from corpus.validate import validate

# -- strategies -------------------------------------------------------------------------------

times = st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=2**31 - 1)
names = st.text(min_size=0, max_size=12)

turn_fields = st.fixed_dictionaries(
    {
        "t": times,
        "input": counts,
        "output": counts,
        "reasoning": st.none() | counts,
        "wait": times,
        "after": st.sampled_from(AFTER),
        "tool_calls": st.lists(names, max_size=4).map(tuple),
        "ttft": st.none() | times,
        "duration": st.none() | times,
        "usage_input": st.none() | counts,
        "usage_cached": st.none() | counts,
        "stop": st.none() | names,
        "status": st.none() | st.integers(min_value=1, max_value=65535),
    }
)


@st.composite
def session_specs(draw: st.DrawFn) -> list[dict]:
    """Sessions as open_session kwargs plus turns with full block lists that mostly extend the
    previous turn's, as agent conversations do (and sometimes rewrite it)."""
    out: list[dict] = []
    for i in range(draw(st.integers(0, 6))):
        parent = draw(st.none() | st.integers(0, i - 1)) if i else None
        turns = []
        prev: list[int] = []
        for _ in range(draw(st.integers(0, 6))):
            keep = draw(st.integers(0, len(prev)))
            new = draw(st.lists(st.integers(0, 2**62), max_size=6))
            full = prev[:keep] + new
            turns.append((draw(turn_fields), full))
            prev = full
        out.append(
            {
                "meta": {
                    "start": draw(times),
                    "model": draw(names),
                    "api": draw(names),
                    "agent": draw(names),
                    "parent": parent,
                },
                "turns": turns,
                "close": draw(st.booleans()),
            }
        )
    return out


def _write(path: Path, specs: list[dict], *, max_turns: int, interleave: bool) -> None:
    with Writer(path, Header(domain="test", block_size=7), keys=False, max_turns=max_turns) as w:
        ids = [w.open_session(**s["meta"]) for s in specs] if interleave else []
        if interleave:  # round-robin over every session's turns, then the closes
            depth = max((len(s["turns"]) for s in specs), default=0)
            for k in range(depth):
                for sid, spec in zip(ids, specs, strict=True):
                    if k < len(spec["turns"]):
                        fields, full = spec["turns"][k]
                        w.add_turn(sid, Turn(**fields), full)
            for sid, spec in zip(ids, specs, strict=True):
                if spec["close"]:
                    w.close_session(sid)
        else:
            for spec in specs:
                sid = w.open_session(**spec["meta"])
                for fields, full in spec["turns"]:
                    w.add_turn(sid, Turn(**fields), full)
                if spec["close"]:
                    w.close_session(sid)


def _expected_turn(fields: dict) -> dict:
    out = dict(fields)
    for name in ("t", "wait", "ttft", "duration"):
        if out[name] is not None:
            out[name] = quantize(out[name])
    return out


def _as_dict(turn: Turn) -> dict:
    d = msgspec.structs.asdict(turn)
    del d["reuse"], d["blocks"]
    return d


# -- round trips ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=session_specs(),
    max_turns=st.integers(1, 5),
    interleave=st.booleans(),
)
def test_round_trip_reads_back_what_was_written(
    specs: list[dict], max_turns: int, interleave: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.zst"
        _write(path, specs, max_turns=max_turns, interleave=interleave)
        reader = Reader(path, strict=True)
        sessions = {s.id: s for s in reader.sessions()}
        assert sorted(sessions) == list(range(len(specs)))
        for sid, spec in enumerate(specs):
            got = sessions[sid]
            meta = spec["meta"]
            assert (got.start, got.model, got.api, got.agent, got.parent) == (
                meta["start"],
                meta["model"],
                meta["api"],
                meta["agent"],
                meta["parent"],
            )
            assert got.domain == "test"
            assert [_as_dict(t) for t in got.turns] == [_expected_turn(f) for f, _ in spec["turns"]]
            assert got.prefixes() == [full for _, full in spec["turns"]]
        _check_table_matches_objects(reader, list(sessions.values()))


def _check_table_matches_objects(reader: Reader, sessions: list[Session]) -> None:
    table = reader.table()
    order = np.argsort(table.turns["session"], kind="stable")
    assert table.n_turns == sum(len(s.turns) for s in sessions)
    assert table.n_sessions == len(sessions)
    flat = [(s.id, t) for s in sorted(sessions, key=lambda s: s.id) for t in s.turns]
    for row, (sid, turn) in zip(order.tolist(), flat, strict=True):
        c = {name: arr[row] for name, arr in table.turns.items()}
        assert c["session"] == sid
        assert (c["input"], c["output"], c["reuse"]) == (turn.input, turn.output, turn.reuse)
        assert c["t"] == turn.t
        assert c["wait"] == turn.wait
        assert _opt(c["ttft"]) == turn.ttft
        assert _opt(c["duration"]) == turn.duration
        assert _opt_int(c["reasoning"]) == turn.reasoning
        assert _opt_int(c["usage_input"]) == turn.usage_input
        assert AFTER[c["after"]] == turn.after
        stop = None if c["stop"] == 0 else table.stop_vocab[c["stop"] - 1]
        assert stop == turn.stop
        got = table.blocks[table.block_start[row] : table.block_start[row + 1]].tolist()
        assert tuple(got) == turn.blocks
    for i, s in enumerate(sorted(sessions, key=lambda s: s.id)):
        assert table.sessions["id"][i] == s.id
        assert table.vocab[table.sessions["model"][i]] == s.model
        assert table.vocab[table.sessions["domain"][i]] == s.domain
        assert table.sessions["parent"][i] == (-1 if s.parent is None else s.parent)


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _opt_int(x: int) -> int | None:
    return None if x < 0 else int(x)


def test_empty_corpus_reads_as_no_sessions(tmp_path: Path) -> None:
    path = tmp_path / "empty.zst"
    Writer(path, Header(domain="legal")).close()
    reader = Reader(path, strict=True)
    assert reader.header.domain == "legal"
    assert list(reader.sessions()) == []
    table = reader.table()
    assert (table.n_turns, table.n_sessions) == (0, 0)
    assert table.turns["t"].dtype == np.float64


def test_sessions_are_yielded_when_they_close_not_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    with Writer(path, keys=False) as w:
        first = w.open_session(model="a")
        w.add_turn(first, Turn(t=0, input=1, output=1), [0])
        w.close_session(first)
        w.flush()
        later = w.open_session(model="b")
        w.add_turn(later, Turn(t=0, input=1, output=1), [1])
    sessions = Reader(path).sessions()
    assert next(sessions).model == "a"
    assert next(sessions).model == "b"  # never closed: yielded at the end


# -- foreign and future files -----------------------------------------------------------------


def test_not_zstd_is_named_not_a_corpus(tmp_path: Path) -> None:
    path = tmp_path / "x.zst"
    path.write_bytes(b"PK\x03\x04 a zip file, say")
    with pytest.raises(FormatError, match=r"x\.zst: not a zstd file; not an agentload corpus"):
        Reader(path)


def test_zstd_that_is_not_a_corpus_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b'{"hello": "world"}\n' * 50))
    with pytest.raises(FormatError, match="zstd data, but not an agentload corpus"):
        Reader(path)


def test_msgpack_records_without_a_header_are_not_a_corpus(tmp_path: Path) -> None:
    path = tmp_path / "x.zst"
    path.write_bytes(compress(pack([Open(id=0), Close(ids=[0])]), 3))
    with pytest.raises(FormatError, match="no corpus header"):
        Reader(path)


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "e.zst").write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        Reader(tmp_path / "e.zst")
    with pytest.raises(FormatError, match="cannot read"):
        Reader(tmp_path / "missing.zst")
    with pytest.raises(FormatError, match="cannot read"):
        Reader(tmp_path)


def test_future_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "v2.zst"
    # a v2 file may hold record kinds v1 doesn't know: the header alone must suffice
    body = pack([Header(magic=MAGIC, version=2)]) + b"\x05\x00\x00\x00\x81\xa4type"
    path.write_bytes(compress(body, 3))
    with pytest.raises(FormatError) as info:
        Reader(path)
    assert "file is format v2, this reader supports ≤ v1; upgrade" in str(info.value)


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    """Schema evolution: a later v1 writer may append fields with defaults."""

    class OpenV11(msgspec.Struct, kw_only=True, tag="open"):
        id: int
        model: str = ""
        colour: str = "blue"

    path = tmp_path / "c.zst"
    enc = msgspec.msgpack.Encoder()
    recs = [enc.encode(Header(magic=MAGIC)), enc.encode(OpenV11(id=0, model="m"))]
    body = b"".join(len(r).to_bytes(4, "little") + r for r in recs)
    path.write_bytes(compress(body, 3))
    (session,) = Reader(path, strict=True).sessions()
    assert session.model == "m"


def test_a_record_kind_this_reader_does_not_know_is_skipped_and_counted(tmp_path: Path) -> None:
    """Evolution within v1: a later writer may add a record kind; this reader reads the rest."""

    class Note(msgspec.Struct, kw_only=True, tag="note"):  # a future kind, e.g. annotations
        session: int
        text: str = ""

    path = tmp_path / "c.zst"
    with Writer(path, Header(domain="legal"), keys=False) as w:
        sid = w.open_session(model="m")
        w.add_turn(sid, Turn(t=0.0, input=10, output=2), [0])
        w.flush()
        w._file.write(compress(pack([Note(session=sid, text="x")]), 3))  # type: ignore[list-item]
        w.add_turn(sid, Turn(t=1.0, input=20, output=2, after="tool"), [0])
        w.close_session(sid)
    reader = Reader(path, strict=True)
    (session,) = reader.sessions()
    assert [t.input for t in session.turns] == [10, 20]
    assert reader.unknown == {"note": 1}
    assert "1 'note'" in (reader.unknown_note() or "")
    result = validate(path)
    assert result.ok, result.problems
    assert result.note is not None
    assert "newer agentload" in result.note


def test_a_record_of_a_known_kind_that_does_not_decode_is_still_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    bad = msgspec.msgpack.encode({"type": "open", "id": "not a number"})
    body = pack([Header(magic=MAGIC)]) + len(bad).to_bytes(4, "little") + bad
    path.write_bytes(compress(body, 3))
    with pytest.raises(CorpusError, match="corrupt"):
        list(Reader(path, strict=True).sessions())


def test_a_header_without_the_magic_is_not_a_corpus(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    path.write_bytes(compress(pack([Header(domain="coding")]), 3))  # no magic on disk
    with pytest.raises(FormatError, match="not an agentload corpus"):
        Reader(path)
    with Writer(tmp_path / "w.zst", Header(domain="coding")):  # the writer stamps it
        pass
    assert Reader(tmp_path / "w.zst").header.magic == MAGIC


def test_turn_columns_follow_the_turn_fields() -> None:
    """A new turn field is one edit: its `Column` annotation gives the on-disk column."""
    structural = {"n", "session", "nblocks", "blocks", "after", "ntools", "tools", "stop", "vocab"}
    assert set(Turns.__struct_fields__) == structural | set(PLAIN)
    assert set(PLAIN) == set(Turn.__struct_fields__) - {"blocks", "after", "tool_calls", "stop"}
    assert set(COLUMNS) == set(PLAIN) | structural - {"n", "blocks", "tools", "vocab"}


def test_append_continues_a_file_and_create_refuses_one(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    with Writer.create(path, Header(domain="legal"), keys=False) as w:
        w.close_session(w.open_session())
    with pytest.raises(CorpusError, match="already exists"):
        Writer.create(path, Header())
    with Writer.append(path, keys=False) as w:
        assert w.header.domain == "legal"
        assert w.open_session() == 1
    with pytest.raises(CorpusError, match="cannot read"):
        Writer.append(tmp_path / "missing.zst")


# -- fuzzing: bad bytes only ever raise the package's errors ----------------------------------


def _read_everything(path: Path) -> None:
    for strict in (False, True):
        reader = Reader(path, strict=strict)
        for session in reader.sessions():
            session.prefixes()
        reader.table()


def _only_corpus_errors(path: Path) -> None:
    try:
        _read_everything(path)
    except CorpusError:
        pass


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "c.zst"
    with Writer(path, keys=False, max_turns=3) as w:
        for i in range(4):
            sid = w.open_session(model=f"m{i}", parent=i - 1 if i else None)
            for k in range(4):
                w.add_turn(
                    sid,
                    Turn(t=k, input=64 * (k + 1), output=k, ttft=0.1, stop="x", tool_calls=("a",)),
                    list(range(100 * i, 100 * i + k + 1)),
                )
            w.close_session(sid)
    return path.read_bytes()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.zst"
        path.write_bytes(data)
        _only_corpus_errors(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_file(valid_file: bytes, data: st.DataObject) -> None:
    buf = bytearray(valid_file)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and buf:
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 8))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.zst"
        path.write_bytes(bytes(buf))
        _only_corpus_errors(path)


def _bodies(valid: bytes) -> list[bytes]:
    """Uncompressed body of every frame (frames are independent, so each re-packs alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.zst"
        path.write_bytes(valid)
        return [pack(frame.records) for frame in scan(path) if isinstance(frame, Frame)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_records_inside_valid_frames(valid_file: bytes, data: st.DataObject) -> None:
    """Past zstd's checksum: well-framed, checksummed data whose msgpack records are wrong."""
    bodies = _bodies(valid_file)
    target = data.draw(st.integers(0, len(bodies) - 1))
    body = bytearray(bodies[target])
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(body) - 1))
        if data.draw(st.booleans()):
            body[pos] = data.draw(st.integers(0, 255))
        else:
            body[pos:pos] = data.draw(st.binary(min_size=1, max_size=9))
    bodies[target] = bytes(body)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.zst"
        path.write_bytes(b"".join(compress(b, 1) for b in bodies))
        _only_corpus_errors(path)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 64) | st.sampled_from([MAX_BATCH + 1, 1 << 40, 2**64 - 1]),
    columns=st.dictionaries(
        st.sampled_from(
            [
                "session",
                "t",
                "input",
                "reuse",
                "nblocks",
                "blocks",
                "stop",
                "tools",
                "ntools",
                "after",
                "ttft",
            ]
        ),
        st.binary(max_size=24),
    ),
    vocab=st.lists(st.text(max_size=3), max_size=3),
    opens=st.lists(st.integers(-(2**63), 2**64 - 1), max_size=3),
)
def test_fuzz_hostile_turn_batches(
    n: int, columns: dict[str, bytes], vocab: list[str], opens: list[int]
) -> None:
    """Records that decode as msgpack but claim absurd sizes, ids or indexes."""

    class AnyTurns(msgspec.Struct, kw_only=True, tag="turns"):
        n: int
        session: bytes = b""
        t: bytes = b""
        input: bytes = b""
        reuse: bytes = b""
        nblocks: bytes = b""
        blocks: bytes = b""
        stop: bytes = b""
        tools: bytes = b""
        ntools: bytes = b""
        after: bytes = b""
        ttft: bytes = b""
        vocab: list[str] = []

    class AnyOpen(msgspec.Struct, kw_only=True, tag="open"):
        id: int
        parent: int | None = None

    enc = msgspec.msgpack.Encoder()
    recs = [enc.encode(Header(magic=MAGIC))]
    recs += [enc.encode(AnyOpen(id=i, parent=i)) for i in opens]
    recs.append(enc.encode(AnyTurns(n=n, vocab=vocab, **columns)))
    body = b"".join(len(r).to_bytes(4, "little") + r for r in recs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.zst"
        path.write_bytes(compress(body, 1))
        _only_corpus_errors(path)


def test_turns_record_limits_are_part_of_the_schema() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode(Turns(n=1 << 30)), type=Turns)
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode(Open(id=-1)), type=Open)
