"""Import Claude Code transcripts (`~/.claude/projects/<project>/<session>.jsonl`, sub-agents in
`<session>/subagents/agent-*.jsonl`; a folder is searched recursively, single files work too).

A transcript is one JSON record per line. `user` and `assistant` records carry API messages; an
API response is written as several `assistant` records (one per content block) that share the
message `id` and copies of its usage, so records are merged by id into one call, even where a
tool's result was written between them (tools start while the response still streams). The
request of a call is every message before it in file order (parallel tool results make
`parentUuid` a tree; file order is the order they were sent in), attachments included; a
`compact_boundary` record starts the context afresh. Records that are no call (`<synthetic>`
assistant messages such as API errors) stay in the context; bookkeeping records
(`queue-operation`, `summary`, `file-history-snapshot`, `last-prompt`, other `system` records)
are ignored.

Counts: `input` = `input_tokens` + `cache_creation_input_tokens` + `cache_read_input_tokens` of
the call's usage (also kept as `usage_input`, with `usage_cached` = cache read), `output` =
`output_tokens`. What the transcript lacks (system prompt, tool schemas, reasoning it stores
empty) is filled with stand-in blocks (`corpus.importers.hidden`): the head is the smallest gap
between the usage and the visible messages over the session's calls; its first part is shared
by every session of the same client version and kind (main or sub-agent), as long as the
largest cache read on a first call of that kind shows the provider shared it; what a call counts
beyond head and messages goes after the previous reply.

Time: a call's request is sent when its last input record was written (else when the previous
response ended), it ends with its last record, `wait` is the gap between the two. Sub-agent
files and sidechains become sessions whose `parent` is their main session.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from corpus.anonymizer import Anonymizer
from corpus.importers.base import (
    Imported,
    Report,
    after,
    expand,
    iso_seconds,
    json_lines,
    sent_at,
    where,
)
from corpus.importers.hidden import Hidden, Layout
from corpus.records import After, Turn
from corpus.wire import apis, linearize

DOMAIN = "coding"
AGENT = "claude-code"
NOTES = (
    "claude-code: input from provider usage (input + cache creation + cache read); content the "
    "transcripts lack (system prompt, tool schemas, empty reasoning) is stand-in blocks; t and "
    "wait from record timestamps (ms)"
)
_SYNTHETIC = "<synthetic>"


def native_block_size(sources: list[Path]) -> int | None:
    return None


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.jsonl",), "Claude Code transcripts (*.jsonl)")


def _records(path: Path, report: Report) -> list[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as f:
        return list(json_lines(f, path, report))


def _usage(message: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(total input, cache read, output) of an assistant message's usage, None without one."""
    u = message.get("usage")
    if not isinstance(u, Mapping):
        return None
    parts = []
    for k in (
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    ):
        v = u.get(k) or 0
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"'usage.{k}' should be a whole number ≥ 0, found {v!r}")
        parts.append(v)
    return parts[0] + parts[1] + parts[2], parts[2], parts[3]


def _is_call(rec: Mapping[str, Any]) -> bool:
    msg = rec.get("message")
    return (
        rec.get("type") == "assistant"
        and isinstance(msg, Mapping)
        and isinstance(msg.get("id"), str)
        and msg.get("model") != _SYNTHETIC
        and not rec.get("isApiErrorMessage")
        and isinstance(msg.get("usage"), Mapping)
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() if k != "type" for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _human(rec: Mapping[str, Any]) -> bool:
    """A prompt the user typed (not a tool result, not a meta or summary message)."""
    if rec.get("isMeta") or rec.get("isCompactSummary") or rec.get("toolUseResult") is not None:
        return False
    content = (rec.get("message") or {}).get("content")
    if isinstance(content, list):
        return not any(isinstance(b, Mapping) and b.get("type") == "tool_result" for b in content)
    return isinstance(content, str)


@dataclass
class _Call:
    base: int  # first message of the context (after the latest compaction)
    ctx: int  # messages in the request
    index: int  # its own assistant message
    t_req: float
    end: float
    total: int
    cached: int
    output: int
    model: str
    after: After
    compacted: bool
    stop: str | None = None
    tools: list[str] = field(default_factory=list)
    id: str = ""  # the API message id


@dataclass
class _Stream:
    """One conversation of a file: its messages and its calls."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)
    version: str = ""
    first_ts: float | None = None
    # reading state
    base: int = 0  # first message after the latest compaction
    last_in: float | None = None  # when the latest input record was written
    human: bool = False  # a typed prompt since the latest call
    prompt_at: int | None = None  # where that prompt is (its attachments go before it)
    compacted: bool = False  # a compaction since the latest call
    ts: float | None = None  # latest timestamp seen
    by_id: dict[str, _Call] = field(default_factory=dict)


def _streams(records: list[tuple[int, dict[str, Any]]], whole: bool) -> list[_Stream]:
    """Split a file into conversations: one when `whole` (a sub-agent file), else the main
    conversation and each sidechain (records linked by `parentUuid` to a sidechain root)."""
    main = _Stream()
    owner: dict[str, _Stream] = {}
    order: list[_Stream] = [main]
    for n, rec in records:
        if whole or not rec.get("isSidechain"):
            stream = main
        else:
            parent = rec.get("parentUuid")
            found = owner.get(parent) if isinstance(parent, str) else None
            if found is None:  # a sidechain's root: a sub-agent of this conversation
                found = _Stream()
                order.append(found)
            stream = found
        if isinstance(rec.get("uuid"), str):
            owner[rec["uuid"]] = stream
        _feed(stream, n, rec)
    return [s for s in order if s.calls]


def _feed(s: _Stream, n: int, rec: dict[str, Any]) -> None:
    """Add one record to a conversation."""
    ts = iso_seconds(rec.get("timestamp"))
    if ts is not None:
        s.ts = ts
        if s.first_ts is None:
            s.first_ts = ts
    ts = s.ts
    if not s.version and isinstance(rec.get("version"), str):
        s.version = rec["version"]
    kind = rec.get("type")
    if kind == "system" and rec.get("subtype") == "compact_boundary":
        s.base = len(s.messages)
        s.compacted = True
        return
    if kind == "attachment":
        text = "\n".join(_strings(rec.get("attachment")))
        if text:  # sent as reminders ahead of the prompt they came with
            at = s.prompt_at if s.prompt_at is not None else len(s.messages)
            s.messages.insert(at, {"role": "user", "content": text})
            if s.prompt_at is not None:
                s.prompt_at += 1
            s.last_in = ts
        return
    msg = rec.get("message")
    if kind not in ("user", "assistant") or not isinstance(msg, Mapping):
        return
    content = msg.get("content")
    if kind == "user":
        if _human(rec):
            s.human = True
            s.prompt_at = len(s.messages)
        s.messages.append({"role": "user", "content": content})
        s.last_in = ts
        return
    if not _is_call(rec):
        s.messages.append({"role": "assistant", "content": content})
        return
    use = _usage(msg)
    assert use is not None
    parts = list(content) if isinstance(content, list) else [{"type": "text", "text": content}]
    call: _Call | None = s.by_id.get(msg["id"])
    if call is not None:  # another block of a response already seen: merge
        s.messages[call.index] = {
            "role": "assistant",
            "content": s.messages[call.index]["content"] + parts,
        }
        call.end = max(call.end, ts or call.end)
        call.total = max(call.total, use[0])
        call.cached = max(call.cached, use[1])
        call.output = max(call.output, use[2])
    else:
        prev = s.calls[-1] if s.calls else None
        t_req = sent_at(s.last_in, prev.end if prev else None, ts if ts is not None else 0.0)
        call = _Call(
            base=s.base,
            ctx=len(s.messages),
            index=len(s.messages),
            t_req=t_req,
            end=ts if ts is not None else t_req,
            total=use[0],
            cached=use[1],
            output=use[2],
            model=str(msg.get("model") or ""),
            after=after(prev is None, s.human, bool(prev and prev.tools)),
            compacted=s.compacted,
            id=msg["id"],
        )
        s.by_id[msg["id"]] = call
        s.human = s.compacted = False
        s.prompt_at = None
        s.messages.append({"role": "assistant", "content": parts})
        s.calls.append(call)
    for p in parts:
        if isinstance(p, Mapping) and p.get("type") == "tool_use":
            call.tools.append(str(p.get("name") or ""))
    if msg.get("stop_reason"):
        call.stop = str(msg["stop_reason"])


def _parse(path: Path, report: Report, whole: bool) -> list[_Stream]:
    return _streams(_records(path, report), whole)


# -- the first pass: time origin and what sessions share ------------------------------------


def _sub(path: Path) -> bool:
    return path.parent.name == "subagents"


def _scan(path: Path) -> tuple[float | None, str, int]:
    """(first timestamp, client version, cache read of the first call) of a file, read only
    as far as its first call."""
    first: float | None = None
    version = ""
    with open(path, "rb") as f:
        for raw in f:
            try:
                rec = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                continue
            if not isinstance(rec, dict):
                continue
            if first is None:
                first = iso_seconds(rec.get("timestamp"))
            if not version and isinstance(rec.get("version"), str):
                version = rec["version"]
            if _is_call(rec):
                try:
                    use = _usage(rec["message"])
                except ValueError:
                    use = None
                return first, version, use[1] if use else 0
    return first, version, 0


@dataclass(frozen=True)
class _Shares:
    """How much of a session's head other sessions hold, per client version. A first call's
    cache read is what it found of its head in the provider's cache: the largest over a kind
    (main agent or sub-agent) is what that kind shares among itself, the smallest over
    sub-agents what a sub-agent shares with the main agent that launched it (tool schemas)."""

    kind: dict[tuple[str, bool], int]
    common: dict[str, int]

    @classmethod
    def scan(cls, scans: dict[Path, tuple[float | None, str, int]]) -> _Shares:
        kind: dict[tuple[str, bool], int] = {}
        common: dict[str, int] = {}
        for p, (_, version, cached) in scans.items():
            key = (version, _sub(p))
            kind[key] = max(kind.get(key, 0), cached)
            if key[1] and cached:
                common[version] = min(common.get(version, cached), cached)
        return cls(kind, common)

    def head(self, version: str, sub: bool) -> list[tuple[str, int]]:
        """(stand-in label, tokens) of the shared parts of a head, in order."""
        label = f"claude-code\x00{version}"
        common = self.common.get(version, 0)
        own = max(self.kind.get((version, sub), 0), common)
        return [(label, common), (f"{label}\x00{'sub' if sub else 'main'}", own - common)]


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    paths = files(sources)
    scans = {p: _scan(p) for p in paths}
    stamps = [s[0] for s in scans.values() if s[0] is not None]
    origin = min(stamps) if stamps else 0.0
    shared = _Shares.scan(scans)
    # by start; a resumed or forked session's file starts with a copy of the one it continues,
    # so among equal starts the smaller file (the original) comes first
    mains = sorted(
        (p for p in paths if not _sub(p)), key=lambda p: (scans[p][0] or 0.0, p.stat().st_size, p)
    )
    subs: dict[Path, list[Path]] = {}
    for p in paths:
        if _sub(p):
            subs.setdefault(p.parent.parent.with_suffix(".jsonl"), []).append(p)
    hidden = Hidden(anon.keys)
    ctx = _Context(anon, hidden, report, origin, shared)
    for path in mains:
        yield from ctx.file(path, parent=None)
        for sub in sorted(subs.pop(path, []), key=lambda p: (scans[p][0] or 0.0, p)):
            yield from ctx.file(sub, parent=path)
    for rest in subs.values():  # sub-agents whose main transcript was not given
        for sub in sorted(rest, key=lambda p: (scans[p][0] or 0.0, p)):
            yield from ctx.file(sub, parent=None)


@dataclass
class _Context:
    anon: Anonymizer
    hidden: Hidden
    report: Report
    origin: float
    shared: _Shares
    seen: set[str] = field(default_factory=set)  # message ids already imported

    def file(self, path: Path, parent: Path | None) -> Iterator[Imported]:
        sub = _sub(path)
        streams = _parse(path, self.report, whole=sub)
        self.report.bytes_read += path.stat().st_size
        if not streams:
            self.report.skip(where(path), "no model call (assistant record with usage); left out")
            return
        for k, stream in enumerate(streams):
            # a resumed or forked session's file repeats the calls it continues: count them once
            fresh = [c for c in stream.calls if c.id not in self.seen]
            if len(fresh) < len(stream.calls):
                self.report.warn(
                    "calls repeated in a later transcript (a resumed or forked session) are "
                    "counted once, in the first transcript that holds them"
                )
            self.seen.update(c.id for c in stream.calls)
            stream.calls = fresh
            if not fresh:
                continue
            side = sub or k > 0
            key = (path, k)
            yield self._session(
                path,
                stream,
                side,
                key,
                parent=(parent, 0) if sub and parent else ((path, 0) if k > 0 else None),
            )

    def _session(self, path: Path, s: _Stream, side: bool, key: object, parent: object) -> Imported:
        anon, hidden = self.anon, self.hidden
        rendered = [linearize.segments(apis.ANTHROPIC, {"messages": [m]}) for m in s.messages]
        counts = [sum(len(anon.cache.array(seg)) for seg in segs) for segs in rendered]
        visible = []
        for c in s.calls:
            visible.append(sum(counts[c.base : c.ctx]))
        gaps = [c.total - v for c, v in zip(s.calls, visible, strict=True)]
        head = max(0, min(gaps))
        layout = Layout(
            head=head,
            shared=self.shared.head(s.version, side),
            private_label=f"claude-code\x00{s.version}\x00{path}\x00{key}",
        )
        t0 = s.calls[0].t_req
        out = Imported(
            start=max(0.0, t0 - self.origin),
            model=s.calls[0].model,
            api=apis.ANTHROPIC,
            agent=AGENT,
            key=key,
            parent=parent,
        )
        prev: _Call | None = None
        for c, gap in zip(s.calls, gaps, strict=True):
            if c.compacted:
                layout.fills = []
            at = prev.index if prev is not None and not c.compacted else c.ctx - 1
            layout.place(gap - head, at)
            segs = layout.segments(hidden, rendered[c.base : c.ctx], c.base)
            prompt = anon.prompt(segs, conversation=key)
            turn = Turn(
                t=c.t_req - t0,
                input=prompt.tokens,
                output=c.output,
                wait=0.0 if prev is None else max(0.0, c.t_req - prev.end),
                after="start" if prev is None else c.after,
                tool_calls=tuple(anon.tool(n) for n in c.tools),
                duration=max(0.0, c.end - c.t_req),
                usage_input=c.total,
                usage_cached=c.cached,
                stop=c.stop,
            )
            out.turns.append((turn, prompt.blocks))
            prev = c
        return out
