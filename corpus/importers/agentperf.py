"""Import agentperf-local replay traces: JSONL, one model call per line, full request messages.

Sources: the `agentperf-local` wheel (`.whl`), its unpacked folder, a `traces/` folder or
`.jsonl` files. From a wheel or a package folder, the traces of the `agentperf-default-v1`
replay are read (every replay's when that one is absent). A row carries `conversation_id`,
`conversation_idx`, the request `messages` and `tools`, `recorded_prompt_tokens`,
`recorded_completion_tokens` (else `target_output_tokens`), `recorded_model_duration_ms`,
`simulated_tool_delay_ms_after` and `recorded_tool_calls_after` (tool names).

Sessions: rows of one `conversation_id` within a file, ordered by `conversation_idx`, as
agentperf-local replays them. Turn k waits the simulated tool delay recorded after turn k-1
(`after` = `tool` when tools ran, else `user`), and `t` accumulates durations and waits.
`usage_input` is the recorded prompt tokens; `input` is our own count of the messages. Agent =
the recording's `source.family`; the recordings don't name their model. All sessions start at 0.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec

from corpus.anonymizer import Anonymizer
from corpus.errors import SourceError
from corpus.importers.base import Imported, Report, count, expand, seconds, where
from corpus.records import After, Turn
from corpus.wire import apis

DOMAIN = "coding"
DEFAULT_REPLAY = "agentperf-default-v1"
NOTES = (
    "agentperf-local: one session per conversation_id; waits are the recorded (simulated) tool "
    "delays; all sessions start at 0"
)


def native_block_size(sources: list[Path]) -> int | None:
    return None


def _pick(names: list[str]) -> list[str]:
    """Trace members of a package: the default replay's, else every replay's."""
    traces = sorted(n for n in names if _is_trace(PurePosixPath(n)))
    default = [n for n in traces if f"/{DEFAULT_REPLAY}/traces/" in f"/{n}"]
    return default or traces


def _is_trace(p: PurePosixPath) -> bool:
    return p.suffix == ".jsonl" and p.parent.name == "traces"


def files(sources: list[Path]) -> list[Path]:
    """Wheels as given; folders resolved to their trace files (see the module docstring)."""
    out: list[Path] = []
    for src in sources:
        if src.is_file() and src.suffix == ".whl":
            out.append(src)
            continue
        if src.is_dir():
            rel = [p.relative_to(src).as_posix() for p in src.rglob("*.jsonl")]
            chosen = _pick(rel)
            if chosen:
                out.extend(src / name for name in chosen)
                continue
        out.extend(expand([src], ("*.jsonl",), "agentperf-local traces (*.jsonl)"))
    return out


def _inputs(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name for messages, bytes) of the trace files in `path` (a wheel or a trace file)."""
    if path.suffix != ".whl":
        yield str(path), path.read_bytes()
        return
    try:
        with zipfile.ZipFile(path) as zf:
            members = _pick(zf.namelist())
            if not members:
                raise SourceError(
                    f"{path}: wheel holds no agentperf_local/data/replays/*/traces/*.jsonl; "
                    "is this the agentperf-local wheel?"
                )
            for name in members:
                yield f"{path}!{name}", zf.read(name)
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{path}: not a readable wheel ({exc})") from exc


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    for path in files(sources):
        for name, data in _inputs(path):
            yield from _file(name, data, anon, report)
        report.bytes_read += path.stat().st_size


def _file(name: str, data: bytes, anon: Anonymizer, report: Report) -> Iterator[Imported]:
    groups: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            report.skip(where(name, n), f"expected one JSON object per line ({exc})")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            report.skip(where(name, n), "expected a trace row with 'messages'; row left out")
            continue
        conv = str(row.get("conversation_id") or row.get("task_id") or "")
        idx = row.get("conversation_idx")
        order = idx if isinstance(idx, int) else n
        groups.setdefault(conv, []).append((order, n, row))
    for rows in groups.values():
        rows.sort(key=lambda r: r[0])
        sess = _session(name, rows, anon, report)
        if sess is not None:
            yield sess


def _session(
    name: str, rows: list[tuple[int, int, dict[str, Any]]], anon: Anonymizer, report: Report
) -> Imported | None:
    out = Imported(api=apis.OPENAI_CHAT)
    prev: Turn | None = None
    delay_after = 0.0
    tools_after = False
    for _, n, row in rows:
        try:
            output = count(row.get("recorded_completion_tokens"), "recorded_completion_tokens")
            if output is None:
                output = count(row.get("target_output_tokens"), "target_output_tokens")
            if output is None:
                raise ValueError("no recorded_completion_tokens or target_output_tokens")
            duration_ms = seconds(
                row.get("recorded_model_duration_ms"), "recorded_model_duration_ms", "ms"
            )
            usage_input = count(row.get("recorded_prompt_tokens"), "recorded_prompt_tokens")
            delay = seconds(
                row.get("simulated_tool_delay_ms_after"), "simulated_tool_delay_ms_after", "ms"
            )
            calls = row.get("recorded_tool_calls_after") or []
            if not isinstance(calls, list):
                raise ValueError("'recorded_tool_calls_after' should be a list")
        except ValueError as exc:
            report.skip(where(name, n), f"{exc}; row left out")
            continue
        body: dict[str, Any] = {"messages": row["messages"]}
        if row.get("tools"):
            body["tools"] = row["tools"]
        prompt = anon.request(apis.OPENAI_CHAT, body)
        duration = None if duration_ms is None else duration_ms / 1000.0
        after: After
        if prev is None:
            t, wait, after = 0.0, 0.0, "start"
            source = row.get("source")
            family = source.get("family") if isinstance(source, Mapping) else None
            out.agent = str(family or "agentperf-local")
        else:
            wait = delay_after
            after = "tool" if tools_after else "user"
            t = prev.t + (prev.duration or 0.0) + wait
        names = [str(c.get("tool_name") or "") for c in calls if isinstance(c, Mapping)]
        turn = Turn(
            t=t,
            input=prompt.tokens,
            output=output,
            wait=wait,
            after=after,
            tool_calls=tuple(anon.tool(x) for x in names),
            duration=duration,
            usage_input=usage_input,
        )
        out.turns.append((turn, prompt.blocks))
        prev = turn
        delay_after = (delay or 0.0) / 1000.0
        tools_after = bool(names) or bool(delay)
    return out if out.turns else None
