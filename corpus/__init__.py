"""The agentload trajectory corpus: records, reader/writer, anonymizer, importers/exporters."""

from corpus.anonymizer import KNOWN_TOOLS, Anonymizer, Prompt
from corpus.errors import (
    CorpusError,
    CorruptError,
    DamagedError,
    FormatError,
    SourceError,
    TruncatedError,
)
from corpus.keys import Keys, sidecar
from corpus.reader import Reader, Table
from corpus.records import VERSION, Header, Session, Turn
from corpus.writer import Writer

__all__ = [
    "KNOWN_TOOLS",
    "VERSION",
    "Anonymizer",
    "CorpusError",
    "CorruptError",
    "DamagedError",
    "FormatError",
    "Header",
    "Keys",
    "Prompt",
    "Reader",
    "Session",
    "SourceError",
    "Table",
    "TruncatedError",
    "Turn",
    "Writer",
    "sidecar",
]
