"""What the exporters share: their report and the session order of a corpus."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from corpus.reader import Reader
from corpus.records import Open, Session


@dataclass
class Report:
    """What an export wrote. `files` counts the files written (1 for a JSONL export)."""

    format: str
    out: Path
    sessions: int = 0
    turns: int = 0
    files: int = 0
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def opens(reader: Reader) -> list[Open]:
    """Every session's `Open` record, in file order (one pass over the file)."""
    return [rec for frame in reader.frames() for rec in frame.records if isinstance(rec, Open)]


def in_order(reader: Reader, order: list[int]) -> Iterator[Session]:
    """The corpus's sessions in the order of the ids in `order`, holding back only those read
    ahead of their turn (none when the file already is in that order)."""
    want = iter(order)
    nxt = next(want, None)
    held: dict[int, Session] = {}
    for sess in reader.sessions():
        held[sess.id] = sess
        while nxt is not None and nxt in held:
            yield held.pop(nxt)
            nxt = next(want, None)
    while nxt is not None:  # sessions opened but never read back (none in a valid file)
        if nxt in held:
            yield held.pop(nxt)
        nxt = next(want, None)


def ms(seconds: float) -> int | float:
    """Milliseconds as JSON likes them: an int when whole (at µs resolution), else a float."""
    value = round(seconds * 1000.0, 3)
    return int(value) if value.is_integer() else value
