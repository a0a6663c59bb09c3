"""The records of a corpus file (format v1) and their in-memory forms.

On disk a file is a sequence of zstd frames of length-prefixed msgpack records: one `Header`,
then `Open` (a session begins), `Turns` (a columnar batch of turns of any open sessions) and
`Close` (sessions that ended). Readers regroup turns into `Session`s.

Evolution within v1 (see corpus/README.md): new fields are appended with defaults and readers
ignore fields they don't know; a new record kind may be added, and a v1 reader skips (and
counts) records of kinds it does not know, so a new kind may only carry what an older reader
can do without. A change an older reader must not skip bumps `VERSION`. A new turn field is one
edit: a `Turn` field annotated with its `Column` (the `Turns` record gets its column from it).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal, NamedTuple, get_args, get_type_hints

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
    """First record of every file: what the corpus is and how its blocks were made.

    `magic` is required on disk: a header record without it is not a corpus header (the
    `Writer` stamps it, as it stamps `created` and `producer`, so code may leave it out)."""

    magic: str = ""
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


class Column(NamedTuple):
    """How a plain `Turn` field is stored: one little-endian numpy array per `Turns` batch.

    `missing` is the stored value of `None` (and of a column left empty when every value is
    it); `time` fields are float seconds stored as integer microseconds."""

    dtype: str
    missing: int = 0
    time: bool = False


I32 = Column("<i4")
I32_OPT = Column("<i4", -1)
SECONDS = Column("<i8", time=True)
SECONDS_OPT = Column("<i8", -1, time=True)


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """One model call. `blocks` holds the ids after the first `reuse` blocks of the previous
    turn of the same session (see `Session.prefixes` for full lists).

    Fields annotated with a `Column` are stored as such (`corpus.columns`); the others
    (`blocks`, `after`, `tool_calls`, `stop`) have their own coding there."""

    t: Annotated[float, SECONDS]
    input: Annotated[int, I32]
    output: Annotated[int, I32]
    reasoning: Annotated[int | None, I32_OPT] = None
    reuse: Annotated[int, I32] = 0
    blocks: tuple[int, ...] = ()
    wait: Annotated[float, SECONDS] = 0.0
    after: After = "start"
    tool_calls: tuple[str, ...] = ()
    ttft: Annotated[float | None, SECONDS_OPT] = None
    duration: Annotated[float | None, SECONDS_OPT] = None
    usage_input: Annotated[int | None, I32_OPT] = None
    usage_cached: Annotated[int | None, I32_OPT] = None
    stop: str | None = None
    status: Annotated[int | None, Column("<u2", 0)] = None


def _plain_columns() -> tuple[dict[str, Column], frozenset[str]]:
    hints = get_type_hints(Turn, include_extras=True)
    plain: dict[str, Column] = {}
    optional: set[str] = set()
    for name in Turn.__struct_fields__:
        spec = [m for m in getattr(hints[name], "__metadata__", ()) if isinstance(m, Column)]
        if spec:
            plain[name] = spec[0]
            if type(None) in get_args(hints[name].__origin__):
                optional.add(name)
    return plain, frozenset(optional)


PLAIN, OPTIONAL = _plain_columns()
"""`PLAIN`: the `Turn` fields stored as plain columns, in field order, with how each is stored;
`OPTIONAL`: those that may be None (stored as their column's `missing` value)."""


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


class _TurnsBase(msgspec.Struct, frozen=True, kw_only=True):
    """On disk: a columnar batch of `n` turns. Numeric columns are little-endian arrays
    (`corpus.columns.COLUMNS` gives dtypes and defaults); an empty column means every value is
    the default. `blocks` holds the new block ids of all turns, delta-coded, `nblocks` how many
    belong to each turn. Strings (stop reasons, tool names) are indexes into `vocab`. Besides
    these fields the record has one `bytes` column per `PLAIN` turn field, of the same name."""

    n: Annotated[int, msgspec.Meta(ge=0, le=MAX_BATCH)]
    session: bytes = b""
    nblocks: bytes = b""
    after: bytes = b""
    stop: bytes = b""
    ntools: bytes = b""
    tools: bytes = b""
    vocab: list[str] = []
    blocks: bytes = b""


if TYPE_CHECKING:

    class Turns(_TurnsBase, frozen=True, kw_only=True, tag="turns"):
        def __init__(self, *, n: int, **columns: object) -> None: ...

        def __getattr__(self, name: str) -> bytes: ...  # the plain columns

else:

    def _turns_struct() -> type[msgspec.Struct]:
        """`_TurnsBase`'s fields and a column per plain field, in an order that compresses
        better (time columns side by side, the bulky block ids last); default (empty)
        columns are not written. Field order and omitted defaults don't matter to readers."""
        base = {f.name: f for f in msgspec.structs.fields(_TurnsBase)}
        plain = sorted(PLAIN, key=lambda name: not PLAIN[name].time)
        return msgspec.defstruct(
            "Turns",
            [
                ("n", base["n"].type),
                *[(name, bytes, b"") for name in plain],
                *[
                    (f.name, f.type, msgspec.field(default_factory=f.default_factory))
                    if f.default is msgspec.NODEFAULT
                    else (f.name, f.type, f.default)
                    for name, f in base.items()
                    if name != "n"
                ],
            ],
            module=__name__,
            frozen=True,
            kw_only=True,
            tag="turns",
            omit_defaults=True,
        )

    Turns = _turns_struct()
    Turns.__doc__ = _TurnsBase.__doc__


Record = Header | Open | Turns | Close
KINDS: frozenset[str] = frozenset(
    str(r.__struct_config__.tag) for r in (Header, Open, Turns, Close)
)


@dataclass(frozen=True, slots=True)
class Unknown:
    """A record of a kind this reader does not know (`kind` is its tag): a later v1 writer's
    addition that readers skip and count. `raw` is its msgpack, so a copy can keep it."""

    kind: str
    raw: bytes
