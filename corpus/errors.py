"""The corpus package's exceptions: one base, a few specific kinds."""

from __future__ import annotations


class CorpusError(Exception):
    """Anything wrong with a corpus file, its sidecar or an import source."""


class FormatError(CorpusError):
    """A file that is not a corpus, is corrupt, or is from a future format version."""


class DamagedError(FormatError):
    """A corpus whose frame `intact_frames` (at byte `offset`) is damaged; the frames before it
    are intact and `corpus salvage` keeps them."""

    def __init__(self, message: str, *, intact_frames: int, offset: int) -> None:
        super().__init__(message)
        self.intact_frames = intact_frames
        self.offset = offset


class TruncatedError(DamagedError):
    """A file whose tail frame is cut short (a killed writer, a partial copy)."""


class CorruptError(DamagedError):
    """A file with a frame whose bytes are wrong (checksum mismatch, undecodable records)."""


class SourceError(CorpusError):
    """An import source that does not match its declared format."""
