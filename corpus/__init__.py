"""The agentload trajectory corpus: records, reader/writer, anonymizer, importers/exporters.

Errors (`corpus.errors`): CorpusError ├── FormatError ── DamagedError ├── TruncatedError,
└── CorruptError; └── SourceError (an import source that does not match its format).

`corpus` is the ground floor: capture, replay and stats import what they need from the names
below (and from `corpus.wire`, the shared wire knowledge), never from other submodules.
"""

from corpus import ops, outfile, synth, tokenizer, wire
from corpus.anonymizer import KNOWN_TOOLS, Anonymizer, Prompt
from corpus.counts import Counts, counts
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
from corpus.records import AFTER, VERSION, After, Header, Session, Turn
from corpus.tokencache import TokenCache, digest
from corpus.writer import Writer

__all__ = [
    "AFTER",
    "KNOWN_TOOLS",
    "VERSION",
    "After",
    "Anonymizer",
    "CorpusError",
    "CorruptError",
    "Counts",
    "DamagedError",
    "FormatError",
    "Header",
    "Keys",
    "Prompt",
    "Reader",
    "Session",
    "SourceError",
    "Table",
    "TokenCache",
    "TruncatedError",
    "Turn",
    "Writer",
    "counts",
    "digest",
    "ops",
    "outfile",
    "sidecar",
    "synth",
    "tokenizer",
    "wire",
]
