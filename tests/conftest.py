"""Set-up shared by every tier of the suite."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Deliver SIGINT if the session started with it ignored.

    A suite started as a background job of a non-interactive shell (`pytest &`, a script's
    `nohup … &`, some CI runners) inherits SIGINT ignored (POSIX), and so does every child it
    starts: Python keeps an inherited SIG_IGN, so a test that stops its `replay` child with
    Ctrl-C would wait forever. This was the "something leaves SIGINT ignored" of earlier full
    runs under load: nothing in the suite ignores it; those runs were started with `&`."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _cut_in_last_frame(path: Path, dest: Path) -> Path:
    """`dest`: `path` cut 9 bytes into its last zstd frame, as a copy stopped mid-write is."""
    from corpus.frames import Frame, scan

    last = [f for f in scan(path) if isinstance(f, Frame)][-1].offset
    dest.write_bytes(path.read_bytes()[: last + 9])
    return dest


@pytest.fixture
def damaged_corpus(tmp_path: Path) -> Path:
    """A 4-session corpus written one turn to a frame, cut inside its last frame (which holds
    only the last session's close): the 4 sessions before the cut are intact."""
    from corpus import Header, Turn, Writer

    path = tmp_path / "c.zst"
    with Writer(path, Header(block_size=4), keys=False, max_turns=1) as w:
        for i in range(4):
            sid = w.open_session(start=float(i))
            w.add_turn(sid, Turn(t=0.0, input=8, output=2), [2 * i, 2 * i + 1])
            w.close_session(sid)
    return _cut_in_last_frame(path, tmp_path / "cut.zst")


@pytest.fixture
def cut_in_last_frame() -> Callable[[Path, Path], Path]:
    """`cut(path, dest)`: a copy of `path` at `dest`, cut 9 bytes into its last frame."""
    return _cut_in_last_frame
