"""Damage is an error, and salvage keeps what is intact: bounded frames, a cut or a flipped
byte loses a bounded part, and the commands refuse a damaged file unless told otherwise."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest
from corpus_samples import build
from typer.testing import CliRunner

from corpus import CorpusError, Header, Reader, Turn, Writer, ops
from corpus.cli import app
from corpus.frames import Frame, scan
from corpus.records import Turns
from corpus.validate import validate
from corpus.writer import BATCH_TURNS

runner = CliRunner()


def _requests(path: Path, n: int, *, max_turns: int = 16_384, seed: int = 0) -> int:
    """A Mooncake-like import: `n` one-turn sessions with random sizes (incompressible)."""
    rng = random.Random(seed)
    with Writer(path, Header(domain="chat", block_size=512), keys=False, max_turns=max_turns) as w:
        for i in range(n):
            sid = w.open_session(start=i * 0.5)
            size = rng.randrange(1, 40_000)
            blocks = [rng.randrange(1 << 40) for _ in range(-(-size // 512))]
            w.add_turn(sid, Turn(t=0.0, input=size, output=rng.randrange(1, 900)), blocks)
            w.close_session(sid)
    return n


def _turns(path: Path) -> int:
    return sum(len(s.turns) for s in Reader(path).sessions())


def test_frames_and_turn_records_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    _requests(path, 20_000)
    frames = [f for f in scan(path) if isinstance(f, Frame)]
    per_frame = [sum(r.n for r in f.records if isinstance(r, Turns)) for f in frames]
    assert sum(per_frame) == 20_000
    assert max(per_frame) <= 16_384
    assert len(per_frame) >= 3  # the header's frame and at least two of turns
    records = [r.n for f in frames for r in f.records if isinstance(r, Turns)]
    assert max(records) <= BATCH_TURNS


@pytest.mark.parametrize("n", [12_031, 20_000])
def test_a_cut_at_70_percent_keeps_at_least_60_percent_of_the_turns(
    tmp_path: Path, n: int
) -> None:
    path = tmp_path / "c.zst"
    _requests(path, n)
    data = path.read_bytes()
    cut = tmp_path / "cut.zst"
    cut.write_bytes(data[: len(data) * 7 // 10])
    result = ops.salvage(cut, tmp_path / "fixed.zst", keys=False)
    assert result.turns >= 0.6 * n
    assert _turns(tmp_path / "fixed.zst") == result.turns


def test_one_flipped_byte_loses_at_most_one_frame(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    _requests(path, 6_000, max_turns=1_000)
    frames = [f for f in scan(path) if isinstance(f, Frame)]
    per_frame = [sum(r.n for r in f.records if isinstance(r, Turns)) for f in frames]
    bad = bytearray(path.read_bytes())
    hit = frames[3].offset + 100  # inside the fourth frame
    bad[hit] ^= 0xFF
    flipped = tmp_path / "flipped.zst"
    flipped.write_bytes(bytes(bad))
    result = ops.salvage(flipped, tmp_path / "fixed.zst", keys=False)
    assert result.turns == 6_000 - per_frame[3]
    assert [d.frame for d in result.damage] == [3]


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    path = tmp_path / "c.zst"
    build(path, sessions=16, seed=3)
    last = [f for f in scan(path) if isinstance(f, Frame)][-1].offset
    cut = tmp_path / "cut.zst"
    cut.write_bytes(path.read_bytes()[: last + 20])
    return cut


def test_info_on_a_damaged_file_fails_with_the_message_validate_gives(damaged: Path) -> None:
    (message,) = validate(damaged).problems
    result = runner.invoke(app, ["info", str(damaged)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {message}"
    allowed = runner.invoke(app, ["info", str(damaged), "--allow-damaged"])
    assert allowed.exit_code == 0, allowed.stderr
    assert "run 'corpus salvage" in allowed.stderr


def test_salvage_of_a_file_that_keeps_no_turn_fails_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    _requests(path, 50)
    data = path.read_bytes()
    first = [f for f in scan(path) if isinstance(f, Frame)][1].offset  # the first turns
    cut = tmp_path / "cut.zst"
    cut.write_bytes(data[: first + 30])
    out = tmp_path / "fixed.zst"
    result = runner.invoke(app, ["salvage", str(cut), "-o", str(out)])
    assert result.exit_code == 1
    assert "no turn is intact" in result.stderr
    assert "nothing to salvage" in result.stderr
    assert not out.exists()


def test_a_directory_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path}: cannot read (is a directory); give a corpus file (.zst)"
    ]


def test_a_full_disk_names_the_output_not_the_temporary_file(tmp_path: Path) -> None:
    out = tmp_path / "out.zst"

    def fill() -> None:
        with ops.replacing(out) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")  # as a write() raises it

    with pytest.raises(CorpusError) as info:
        fill()
    message = str(info.value)
    assert message.startswith(f"{out}: cannot write it (No space left on device)")
    assert ".tmp" not in message
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_file_written_at_once_is_spread_so_one_flipped_byte_loses_a_quarter(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.zst"
    n = _requests(path, 6_000)  # fits one frame: spread at close
    frames = [f for f in scan(path) if isinstance(f, Frame)]
    per_frame = [sum(r.n for r in f.records if isinstance(r, Turns)) for f in frames]
    assert per_frame[1:] == [1_500] * 4
    assert validate(path).ok
    for frame in frames[1:]:
        bad = bytearray(path.read_bytes())
        bad[frame.offset + 200] ^= 0xFF
        flipped = tmp_path / "flipped.zst"
        flipped.write_bytes(bytes(bad))
        result = ops.salvage(flipped, tmp_path / "fixed.zst", keys=False, force=True)
        assert result.turns == n - 1_500
