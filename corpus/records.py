"""The records of a corpus file (format v1) and their in-memory forms.

On disk a file is a sequence of zstd frames of length-prefixed msgpack records: one `Header`,
then `Open` (a session begins), `Turns` (a columnar batch of turns of any open sessions) and
`Close` (sessions that ended). Readers regroup turns into `Session`s. New fields are appended
with defaults; readers ignore fields they don't know.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import msgspec

MAGIC = "agentload-corpus"
VERSION = 1
DEFAULT_BLOCK_SIZE = 64
MAX_BATCH = 1 << 20
"""Most turns one `Turns` record may hold (bounds what a damaged or hostile file can allocate)."""

# Session ids are stored in an int32 column; decoding rejects what a column couldn't hold.
SessionId = Annotated[int, msgspec.Meta(ge=0, lt=1 << 31)]

After = Literal["start", "tool", "user"]
AFTER: tuple[str, ...] = ("start", "tool", "user")


class Header(msgspec.Struct, frozen=True, kw_only=True, tag="header"):
    """First record of every file: what the corpus is and how its blocks were made."""

    magic: str = MAGIC
    version: int = VERSION
    domain: str = "unknown"
    tokenizer: str = "cl100k_base"
    block_size: int = DEFAULT_BLOCK_SIZE
    created: str = ""
    producer: str = ""
    source: str = "capture"
    license: str = ""
    notes: str = ""

    @staticmethod
    def today() -> str:
        """Creation stamp: the date only, never the time (anonymity)."""
        return datetime.date.today().isoformat()


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """One model call. `blocks` holds the ids after the first `reuse` blocks of the previous
    turn of the same session (see `Session.prefixes` for full lists)."""

    t: float
    input: int
    output: int
    reasoning: int | None = None
    reuse: int = 0
    blocks: tuple[int, ...] = ()
    wait: float = 0.0
    after: str = "start"
    tool_calls: tuple[str, ...] = ()
    ttft: float | None = None
    duration: float | None = None
    usage_input: int | None = None
    usage_cached: int | None = None
    stop: str | None = None
    status: int | None = None


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """One agent conversation: metadata and its turns in order."""

    id: int
    start: float = 0.0
    model: str = ""
    api: str = ""
    agent: str = ""
    parent: int | None = None
    turns: tuple[Turn, ...] = ()
    domain: str = ""  # this session's domain (the reader fills in the header's when unset)

    def prefixes(self) -> list[list[int]]:
        """The full block-id list of every turn, rebuilt from `reuse` + `blocks`."""
        out: list[list[int]] = []
        prev: list[int] = []
        for turn in self.turns:
            full = prev[: turn.reuse] + list(turn.blocks)
            out.append(full)
            prev = full
        return out


class Open(msgspec.Struct, frozen=True, kw_only=True, tag="open"):
    """On disk: a session begins. `domain` is set only where it differs from the header's
    (a merge of corpora from different domains)."""

    id: SessionId
    start: float = 0.0
    model: str = ""
    api: str = ""
    agent: str = ""
    parent: SessionId | None = None
    domain: str = ""


class Close(msgspec.Struct, frozen=True, kw_only=True, tag="close"):
    """On disk: these sessions have ended and will get no more turns."""

    ids: list[SessionId]


class Turns(msgspec.Struct, frozen=True, kw_only=True, tag="turns"):
    """On disk: a columnar batch of `n` turns. Numeric columns are little-endian arrays
    (`corpus.columns.COLUMNS` gives dtypes and defaults); an empty column means every value is
    the default. `blocks` holds the new block ids of all turns, delta-coded, `nblocks` how many
    belong to each turn. Strings (stop reasons, tool names) are indexes into `vocab`."""

    n: Annotated[int, msgspec.Meta(ge=0, le=MAX_BATCH)]
    session: bytes = b""
    t: bytes = b""
    input: bytes = b""
    output: bytes = b""
    reasoning: bytes = b""
    reuse: bytes = b""
    nblocks: bytes = b""
    blocks: bytes = b""
    wait: bytes = b""
    after: bytes = b""
    ntools: bytes = b""
    tools: bytes = b""
    ttft: bytes = b""
    duration: bytes = b""
    usage_input: bytes = b""
    usage_cached: bytes = b""
    stop: bytes = b""
    status: bytes = b""
    vocab: list[str] = []


Record = Header | Open | Turns | Close
