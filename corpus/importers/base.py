"""What every importer shares: the session it yields, the report it fills, source discovery.

An importer module is a generator of `Imported` sessions over its sources; `corpus.importers.run`
feeds them to one `Writer`. Blocks are full block-id lists, already anonymized (content formats
through `Anonymizer.request`/`prompt`, hash formats through `Anonymizer.foreign`/`unique`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from corpus.anonymizer import Anonymizer
from corpus.errors import SourceError
from corpus.records import After, Turn
from corpus.wire import linearize


@dataclass
class Report:
    """What an import (or export) did. `skipped` lists `file:line: reason` for every source record
    that was left out while the rest was imported; `warnings` are caveats about the whole run."""

    format: str
    out: Path | None = None
    sessions: int = 0
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bytes_read: int = 0  # source bytes consumed so far (for progress)

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append(f"{where}: {reason}")

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


@dataclass
class Imported:
    """One session as an importer yields it. `key` is the importer's handle for the session, so
    a later session (a sub-agent) can name it as `parent`; a parent is always yielded first."""

    turns: list[tuple[Turn, list[int]]] = field(default_factory=list)
    start: float = 0.0
    model: str = ""
    api: str = ""
    agent: str = ""
    key: object = None
    parent: object = None


class Ids:
    """Corpus ids of a hash-only source's block ids within one scope (memoized)."""

    def __init__(self, anon: Anonymizer, scope: str) -> None:
        self.anon = anon
        self.scope = scope
        self._map: dict[int, int] = {}

    def __call__(self, ids: list[int]) -> list[int]:
        get, out = self._map.get, []
        for i in ids:
            found = get(i)
            if found is None:
                found = self._map[i] = self.anon.foreign(self.scope, i)
            out.append(found)
        return out


def where(path: Path | str, line: int | str | None = None) -> str:
    """`file:line` (or `file: item`) for messages."""
    if line is None:
        return str(path)
    if isinstance(line, int):
        return f"{path}:{line}"
    return f"{path}: {line}"


def json_lines(
    lines: Iterable[bytes], name: Path | str, report: Report
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each JSON-object line; blank lines are passed over, others
    are listed in `report.skipped` as `name:line`."""
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            obj = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            report.skip(
                where(name, n), f"expected one JSON object per line, found invalid JSON ({exc})"
            )
            continue
        if not isinstance(obj, dict):
            report.skip(where(name, n), f"expected a JSON object, found {type(obj).__name__}")
            continue
        yield n, obj


def expand(sources: Sequence[Path], patterns: Iterable[str], what: str) -> list[Path]:
    """Files named in `sources`, folders searched recursively for `patterns` (sorted). Raises
    SourceError for a missing path or a folder without any matching file."""
    pats = tuple(patterns)
    out: list[Path] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            found = sorted({p for pat in pats for p in src.rglob(pat) if p.is_file()})
            if not found:
                raise SourceError(
                    f"{src}: folder holds no {what} (looked for {', '.join(pats)}); "
                    "point at the files or at the folder that holds them"
                )
            out.extend(found)
        elif src.is_file():
            out.append(src)
        else:
            raise SourceError(f"{src}: no such file or folder")
    if not out:
        raise SourceError(f"no sources given; expected {what}")
    return out


def iso_seconds(value: Any) -> float | None:
    """POSIX seconds of an ISO 8601 stamp (`2026-01-02T03:04:05.678Z`); None if it isn't one."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def sent_at(last_input: float | None, prev_end: float | None, first_output: float) -> float:
    """When a logged call's request went out: when its last input was written (else when the
    previous response ended), never before that response ended nor after its own first
    output was written."""
    t = (
        last_input
        if last_input is not None
        else (prev_end if prev_end is not None else first_output)
    )
    if prev_end is not None:
        t = max(t, prev_end)
    return min(t, first_output)


def after(first: bool, prompted: bool, prev_called_tools: bool) -> After:
    """What filled the wait before a logged call: `start`, `tool` (the previous response
    called tools and no new prompt was typed since), or `user`."""
    if first:
        return "start"
    return "tool" if prev_called_tools and not prompted else "user"


def cache_blocks(anon: Anonymizer, previous: list[int], cached: int, tokens: int) -> list[int]:
    """Block ids for a request known only by counts: as many of the previous request's blocks as
    its `cached` tokens cover, then new blocks shared with nothing up to `tokens`."""
    bs = anon.block_size
    need = -(-tokens // bs)
    keep = min(cached // bs, len(previous), need)
    return previous[:keep] + [anon.unique() for _ in range(need - keep)]


def seconds(value: Any, name: str, unit: str = "seconds") -> float | None:
    """A non-negative finite number (of `unit`), None when absent; ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{name}' should be a number of {unit}, found {value!r}")
    x = float(value)
    if x != x or x in (float("inf"), float("-inf")) or x < 0:
        raise ValueError(f"'{name}' should be a finite number ≥ 0, found {value!r}")
    return x


def count(value: Any, name: str, *, required: bool = False) -> int | None:
    """A non-negative integer token count, None when absent; ValueError otherwise."""
    if value is None:
        if required:
            raise ValueError(f"'{name}' is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"'{name}' should be a whole number, found {value!r}")
    if value < 0:
        raise ValueError(f"'{name}' should be ≥ 0, found {value}")
    return int(value)


# -- content formats -------------------------------------------------------------------------

_ROLE_MARK = re.compile(r"^<\|[A-Za-z_]+\|>")


def tool_names(message: Mapping[str, Any]) -> list[str]:
    """Names of the tool calls in an assistant message (OpenAI `tool_calls`/`function_call`, or
    Anthropic `tool_use` content parts)."""
    names: list[str] = []
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            fn = call.get("function")
            name = fn.get("name") if isinstance(fn, Mapping) else call.get("name")
            names.append(str(name or ""))
    fc = message.get("function_call")
    if isinstance(fc, Mapping):
        names.append(str(fc.get("name") or ""))
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "tool_use":
                names.append(str(part.get("name") or ""))
    return names


class Conversation:
    """The growing request of one conversation, rendered one message at a time.

    `segments(n)` is the linearized request made of the head (tools, system) and the first `n`
    messages; each message is rendered and normalized once, however many turns repeat it.
    """

    def __init__(
        self, api: str, *, tools: Any = None, system: Any = None, messages: Sequence[Any] = ()
    ) -> None:
        self.api = api
        head: dict[str, Any] = {}
        if tools:
            head["tools"] = tools
        if system:
            head["system"] = system
        self._head = linearize.segments(api, head)
        self._messages = list(messages)
        self._rendered: list[list[str]] = []
        self._flat: list[str] = list(self._head)
        self._ends: list[int] = [len(self._head)]  # _ends[n]: segments in the head + n messages

    def _render(self, upto: int) -> None:
        while len(self._rendered) < upto:
            msg = self._messages[len(self._rendered)]
            segs = linearize.segments(self.api, {"messages": [msg]})
            self._rendered.append(segs)
            self._flat.extend(segs)
            self._ends.append(len(self._flat))

    def segments(self, n: int) -> list[str]:
        """Segments of the request that holds the first `n` messages."""
        self._render(n)
        return self._flat[: self._ends[n]]

    def output_text(self, i: int) -> str:
        """What message `i` (an assistant reply) generated, as the model would have: its text and
        tool calls, without our role marker."""
        self._render(i + 1)
        return "".join(_ROLE_MARK.sub("", s, count=1) for s in self._rendered[i])
