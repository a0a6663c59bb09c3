"""The writer: timed flushing survives a kill, appends keep ids, the sidecar stays private."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from corpus_samples import SHARED, build
from hypothesis import given
from hypothesis import strategies as st

from corpus import CorpusError, Header, Keys, Reader, TruncatedError, Turn, Writer, sidecar
from corpus.frames import Frame, scan
from corpus.writer import _common_prefix

KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from corpus import Turn, Writer
    w = Writer(sys.argv[1], flush_every=1.0, keys=False)
    i = 0
    while True:
        sid = w.open_session(start=float(i))
        w.add_turn(sid, Turn(t=0.0, input=64, output=1), [i])
        w.close_session(sid)
        print(sid, time.monotonic(), flush=True)  # when this session was complete
        i += 1
        time.sleep(0.01)
    """
)


def _on_disk(path: Path) -> int:
    """Sessions a reader finds in the file now (a frame being written reads as a torn tail)."""
    try:
        return len(list(Reader(path).sessions()))
    except CorpusError:
        return 0


def test_flush_every_writes_without_a_close_and_a_kill_keeps_it(tmp_path: Path) -> None:
    """The timed flush puts complete sessions on disk with no close (waited for as an event,
    however slow the machine), and SIGKILL after it loses none of them. (That the interval is
    one second is the writer's own clock check; a loaded machine only stretches it.)"""
    path = tmp_path / "live.zst"
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # sessions complete as the writer reports them
                if int(line.split()[0]) >= 4:
                    break
            deadline = time.monotonic() + 120  # a guard against a hang, not a speed check
            while (flushed := _on_disk(path)) < 5:
                assert time.monotonic() < deadline, "the timed flush never wrote a frame"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
    reader = Reader(path)
    sessions = list(reader.sessions())
    assert [s.id for s in sessions] == list(range(len(sessions)))  # a prefix: nothing skipped
    assert len(sessions) >= flushed  # what was flushed before the kill is all there
    assert reader.table().n_turns == sum(len(s.turns) for s in sessions)


def test_append_keeps_block_ids_and_continues_session_ids(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    first = build(path, sessions=5, seed=1)
    epoch = 1_700_000_000.0
    with Writer.append(path) as w:
        assert w.header.source == "test"  # the file's header wins
        sid = w.open_session(start=w.relative(epoch + 3))
        assert sid == 5
        chains = ["/".join(SHARED[: j + 1]) for j in range(len(SHARED))]
        w.add_turn(
            sid, Turn(t=0, input=20, output=1), [w.keys.id(w.keys.mac(c.encode())) for c in chains]
        )
        w.close_session(sid)
    sessions = {s.id: s for s in Reader(path, strict=True).sessions()}
    assert sorted(sessions) == list(range(6))
    shared_ids = first.blocks[0][0][: len(SHARED)]
    assert sessions[5].prefixes()[0] == shared_ids  # same content, same ids as before
    # a second append picks up the time origin the first one set
    with Writer.append(path) as w:
        assert w.relative(epoch + 10) == pytest.approx(7.0)  # origin: the first call, epoch + 3
        assert w.open_session() == 6


def test_append_without_keys_never_reuses_an_id_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    build(path, sessions=4, seed=2)
    top = int(Reader(path).table().blocks.max())
    with Writer.append(path, keys=False) as w:
        new_id = w.keys.id(w.keys.mac(b"system"))
        assert new_id == top + 1


def test_append_with_a_foreign_sidecar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    build(path, sessions=4, seed=2)
    sidecar(path).unlink()
    Keys.create(path)  # an empty table: knows none of the file's ids
    with pytest.raises(CorpusError, match="does not belong"):
        Writer.append(path)


def test_append_needs_the_sidecar_for_consistent_ids(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    build(path, sessions=2, seed=2)
    sidecar(path).unlink()
    with pytest.raises(CorpusError, match="no keys sidecar"):
        Writer.append(path)


def test_sidecar_is_private(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    old = os.umask(0)  # even with a permissive umask
    try:
        build(path, sessions=2)
    finally:
        os.umask(old)
    mode = stat.S_IMODE(sidecar(path).stat().st_mode)
    assert mode == 0o600


def test_appending_to_a_truncated_file_points_to_salvage(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    build(path, sessions=6, seed=4)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(TruncatedError) as info:
        Writer.append(path)
    assert "can't append" in str(info.value)
    assert "corpus salvage" in str(info.value)
    assert path.read_bytes() == data[:-7]  # untouched


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    build(path, sessions=2)
    before = path.read_bytes()
    with pytest.raises(CorpusError, match="already exists"):
        Writer(path)
    assert path.read_bytes() == before


def test_append_with_another_block_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    build(path, sessions=2, block_size=16)
    with pytest.raises(CorpusError, match="16-token blocks"):
        Writer.append(path, block_size=64)


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"input": -1}, "input=-1"),
        ({"output": 2**31}, "output="),
        ({"ttft": -0.5}, "ttft=-0.5"),
        ({"duration": float("nan")}, "duration=nan"),
        ({"t": float("inf")}, "t=inf"),
        ({"after": "lunch"}, "after='lunch'"),
        ({"status": 0}, "status=0"),
        ({"usage_cached": -3}, "usage_cached=-3"),
        ({"t": -1.0}, "t=-1.0 (expected finite seconds ≥ 0)"),  # what `corpus validate` rejects
        ({"wait": -0.25}, "wait=-0.25"),
    ],
)
def test_writer_refuses_values_it_cannot_store(
    tmp_path: Path, fields: dict, complaint: str
) -> None:
    with Writer(tmp_path / "c.zst", keys=False) as w:
        sid = w.open_session()
        base = {"t": 0.0, "input": 1, "output": 1}
        w.add_turn(sid, Turn(**base), [0])
        with pytest.raises(CorpusError, match="can't be stored") as info:
            w.add_turn(sid, Turn(**(base | fields)), [0])
        assert complaint in str(info.value)
        assert str(info.value).startswith(f"session {sid}, turn 1: ")  # which one, to find it
        with pytest.raises(CorpusError, match=f"session {sid}, turn 1: block ids"):
            w.add_turn(sid, Turn(**base), [-4])
        w.add_turn(sid, Turn(**base), [0, 1])  # a refused turn leaves the session as it was
    table = Reader(tmp_path / "c.zst").table()
    assert table.n_turns == 2


def test_turns_of_unknown_sessions_and_parents_are_refused(tmp_path: Path) -> None:
    with Writer(tmp_path / "c.zst", keys=False) as w:
        with pytest.raises(CorpusError, match="not open"):
            w.add_turn(3, Turn(t=0, input=1, output=1), [0])
        with pytest.raises(CorpusError, match="parent session 0"):
            w.open_session(parent=0)


def test_frames_are_split_at_max_turns(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    with Writer(path, keys=False, max_turns=10) as w:
        sid = w.open_session()
        for k in range(35):
            w.add_turn(sid, Turn(t=k, input=1, output=1), [0])
    frames = [f for f in scan(path) if isinstance(f, Frame)]
    assert len(frames) == 1 + 4  # header, then 10 + 10 + 10 + 5 turns
    assert Reader(path).table().n_turns == 35


def test_session_domain_is_stored_only_when_it_differs(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    with Writer(path, Header(domain="coding"), keys=False) as w:
        w.open_session(domain="coding")
        w.open_session(domain="legal")
    records = [r for f in scan(path) if isinstance(f, Frame) for r in f.records]
    assert [getattr(r, "domain", None) for r in records[1:]] == ["", "legal"]
    assert [s.domain for s in Reader(path).sessions()] == ["coding", "legal"]


def test_a_failed_flush_writes_its_turns_once_when_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.zst"
    w = Writer(path, Header(block_size=4))
    sid = w.open_session()
    w.add_turn(sid, Turn(t=0.0, input=4, output=1), [0])

    def disk_full() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(w.keys, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        w.flush()
    monkeypatch.undo()
    w.close()
    sessions = list(Reader(path).sessions())
    assert [len(s.turns) for s in sessions] == [1]


@given(
    prev=st.lists(st.integers(0, 3), max_size=12),
    full=st.lists(st.integers(0, 3), max_size=12),
)
def test_reuse_is_the_longest_common_prefix(prev: list[int], full: list[int]) -> None:
    """The writer stores `full` as (reuse, new blocks) against the previous turn: `reuse`
    must be the exact longest common prefix, whatever the shapes (extended, tail changed,
    edited in the middle, shorter)."""
    expected = 0
    while expected < min(len(prev), len(full)) and prev[expected] == full[expected]:
        expected += 1
    assert _common_prefix(prev, full) == expected
