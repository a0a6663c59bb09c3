"""The corpus package's exceptions: one base, a few specific kinds."""

from __future__ import annotations


class CorpusError(Exception):
    """Anything wrong with a corpus file, its sidecar or an import source."""


class FormatError(CorpusError):
    """A file that is not a corpus, is corrupt, or is from a future format version."""


class TruncatedError(FormatError):
    """A file whose tail frame is cut short; the frames before it are intact."""

    def __init__(self, message: str, *, intact_frames: int, offset: int) -> None:
        super().__init__(message)
        self.intact_frames = intact_frames
        self.offset = offset


class SourceError(CorpusError):
    """An import source that does not match its declared format."""
