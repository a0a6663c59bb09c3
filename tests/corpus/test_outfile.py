"""Output files: checked before the work, written beside the target and renamed."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus import outfile
from corpus.errors import CorpusError


def test_an_existing_file_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text("old")
    with pytest.raises(CorpusError, match="already exists; pass --force"):
        outfile.check(out)
    assert outfile.check(out, force=True) == out


@pytest.mark.parametrize(("name", "message"), [("missing/r.json", "no such directory"),
                                               (".", "is a directory")])
def test_unwritable_targets_are_refused(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(CorpusError, match=message):
        outfile.check(tmp_path / name)


def test_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text("old")
    outfile.write(out, b"new")
    assert out.read_bytes() == b"new"
    assert list(tmp_path.iterdir()) == [out]


def test_a_failed_write_names_the_target_not_the_temporary(tmp_path: Path) -> None:
    out = tmp_path / "gone" / "r.json"
    with pytest.raises(CorpusError) as exc:
        outfile.write(out, b"x")
    assert str(exc.value).startswith(f"{out}: cannot write")
    assert ".tmp" not in str(exc.value)
