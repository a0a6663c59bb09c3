"""Reading damaged files: a cut tail keeps every complete frame; bad bytes stop cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_samples import build

from corpus import CorpusError, FormatError, Reader, Session, TruncatedError
from corpus.errors import CorruptError, DamagedError
from corpus.frames import Frame, scan


def _frames(path: Path) -> list[Frame]:
    return [f for f in scan(path) if isinstance(f, Frame)]


def _sessions(path: Path) -> list[Session]:
    return list(Reader(path).sessions())


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reader") / "c.zst"
    build(path, sessions=16, seed=3)
    assert len(_frames(path)) >= 4
    return path


def test_truncated_tail_keeps_complete_frames(corpus_file: Path, tmp_path: Path) -> None:
    data = corpus_file.read_bytes()
    last = _frames(corpus_file)[-1].offset
    intact = tmp_path / "intact.zst"
    intact.write_bytes(data[:last])
    expected = _sessions(intact)
    n_frames = len(_frames(intact))
    cut = tmp_path / "cut.zst"
    for end in range(last + 1, len(data)):  # every byte offset inside the last frame
        cut.write_bytes(data[:end])
        reader = Reader(cut)
        assert list(reader.sessions()) == expected
        assert reader.damage is not None
        assert (reader.damage.kind, reader.damage.frame) == ("truncated", n_frames)
        assert reader.damage.offset == last
        assert reader.table().n_turns == sum(len(s.turns) for s in expected)


def test_truncated_tail_strict_names_file_frame_offset_and_salvage(
    corpus_file: Path, tmp_path: Path
) -> None:
    data = corpus_file.read_bytes()
    frames = _frames(corpus_file)
    cut = tmp_path / "cut.zst"
    cut.write_bytes(data[: frames[-1].offset + 5])
    reader = Reader(cut, strict=True)
    with pytest.raises(TruncatedError) as info:
        list(reader.sessions())
    message = str(info.value)
    assert str(cut) in message
    assert f"frame {len(frames) - 1} at byte {frames[-1].offset}" in message
    assert "corpus salvage" in message
    assert info.value.offset == frames[-1].offset
    assert info.value.intact_frames == len(frames) - 1


def test_cut_between_frames_is_a_complete_file(corpus_file: Path, tmp_path: Path) -> None:
    data = corpus_file.read_bytes()
    cut = tmp_path / "cut.zst"
    for frame in _frames(corpus_file)[1:]:
        cut.write_bytes(data[: frame.offset])
        reader = Reader(cut, strict=True)
        list(reader.sessions())
        assert reader.damage is None


def test_cut_inside_the_header_frame_reads_nothing(corpus_file: Path, tmp_path: Path) -> None:
    data = corpus_file.read_bytes()
    header_end = _frames(corpus_file)[1].offset
    cut = tmp_path / "cut.zst"
    for end in range(1, header_end):
        cut.write_bytes(data[:end])
        try:
            reader = Reader(cut)
        except FormatError as exc:
            message = str(exc)
        else:  # the header itself arrived (only the frame's checksum is missing)
            message = ""
        if message:
            assert "no session is readable" in message
            continue
        assert list(reader.sessions()) == []
        assert reader.damage is not None
        assert reader.damage.kind == "truncated"


def test_corrupt_middle_frame_stops_there(corpus_file: Path, tmp_path: Path) -> None:
    data = bytearray(corpus_file.read_bytes())
    frames = _frames(corpus_file)
    middle = frames[len(frames) // 2]
    data[middle.offset + 20] ^= 0x55
    bad = tmp_path / "bad.zst"
    bad.write_bytes(bytes(data))
    before = tmp_path / "before.zst"
    before.write_bytes(bytes(data[: middle.offset]))
    reader = Reader(bad)
    assert list(reader.sessions()) == _sessions(before)
    assert reader.damage is not None
    assert reader.damage.kind == "corrupt"
    assert reader.damage.frame == middle.index
    with pytest.raises(CorruptError, match=f"frame {middle.index} at byte {middle.offset}"):
        list(Reader(bad, strict=True).sessions())


def test_bytes_after_the_last_frame_are_damage(corpus_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zst"
    bad.write_bytes(corpus_file.read_bytes() + b"trailing junk")
    reader = Reader(bad)
    assert len(list(reader.sessions())) == 16
    assert reader.damage is not None
    assert reader.damage.detail == "no zstd frame starts here"
    with pytest.raises(DamagedError):
        Reader(bad, strict=True).table()


def test_damage_errors_are_corpus_errors() -> None:
    assert issubclass(TruncatedError, FormatError)
    assert issubclass(CorruptError, FormatError)
    assert issubclass(FormatError, CorpusError)


def test_full_block_lists_match_what_was_written(tmp_path: Path) -> None:
    built = build(tmp_path / "c.zst", sessions=10, seed=5)
    for session in Reader(tmp_path / "c.zst", strict=True).sessions():
        assert session.prefixes() == built.blocks[session.id]
        assert [t.input for t in session.turns] == [t.input for t in built.turns[session.id]]
