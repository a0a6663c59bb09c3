"""Export a corpus as an agentperf-local replay: a folder with `manifest.json` and one
`traces/<task>.jsonl` per session, one row per turn (AA's agentperf-local format, version 1).

Every session (sub-agents too) is a task whose conversation grows as recorded. agentperf-local
sends each row's messages as they are, so every row holds exactly its turn's input (counting the
chat template's `framing` tokens per message, default 5): the first row one system message,
each later row adds an assistant message (the previous reply as it stays in the context: its
output less its reasoning, at most all but one token of the growth) and a user message of the
rest. A turn whose context shrank (a compaction, dropped reasoning) restarts with one system
message. Message text is made of single-token words (cl100k), so a message holds exactly its
count; system messages are built block by block from the corpus's block ids, so sessions that
share a prefix (a system prompt) send the same text for it. Rows carry `target_output_tokens`
= `max_output_tokens` = the recorded output, the recorded counts and duration, and
`simulated_tool_delay_ms_after` = the recorded wait before the next turn (with the turn's tool
names, pseudonyms where the corpus has them, as `recorded_tool_calls_after`). Lost: absolute
session starts (agentperf-local starts every task at once), sub-agent links and the block
structure after the first message (each row extends the previous one instead).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from corpus.errors import CorpusError
from corpus.exporters.base import Report, in_order, opens
from corpus.exporters.mooncake import FRAMING
from corpus.importers.hidden import Hidden
from corpus.keys import Keys
from corpus.reader import Reader
from corpus.records import Session

VERSION = 1
MODE = "single_user_agentic_replay"


def write(src: Path, out: Path, *, framing: int = FRAMING) -> Report:
    if out.exists():
        raise CorpusError(f"{out}: already exists; choose another folder or remove it first")
    reader = Reader(src)
    bs = reader.header.block_size
    order = [o.id for o in sorted(opens(reader), key=lambda o: (o.start, o.id))]
    words = Hidden(Keys.ephemeral())
    report = Report(format="agentperf-local", out=out)
    tasks: list[dict[str, Any]] = []
    (out / "traces").mkdir(parents=True)
    try:
        for sess in in_order(reader, order):
            if not sess.turns:
                continue
            task = f"s{sess.id:04d}"
            rows = _rows(sess, task, bs, framing, words)
            path = out / "traces" / f"{task}.jsonl"
            path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
            tasks.append(
                {
                    "task_id": task,
                    "trace": f"traces/{task}.jsonl",
                    "source_recording": src.name,
                    "model_calls": len(rows),
                    "tool_calls": sum(len(t.tool_calls) for t in sess.turns),
                    "total_recorded_tool_delay_ms": sum(
                        r["simulated_tool_delay_ms_after"] for r in rows
                    ),
                    "family": sess.agent or reader.header.domain,
                    "adapter": "openai-tools",
                    "required_context_tokens": max(t.input + t.output for t in sess.turns),
                }
            )
            report.sessions += 1
            report.turns += len(rows)
            report.files += 1
        manifest = {
            "name": f"agentload export of {src.name}",
            "source": f"agentload:{reader.header.source}",
            "mode": MODE,
            "version": VERSION,
            "tasks": tasks,
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        report.files += 1
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if reader.damage is not None:
        report.warn(reader.damage.message(str(src)))
    return report


def _first(blocks: list[int], tokens: int, bs: int, words: Hidden) -> str:
    """`tokens` tokens of text named block by block, so equal leading blocks give equal text."""
    parts: list[str] = []
    left = tokens
    for b in blocks:
        if left <= 0:
            break
        parts.append(words.text(f"block\x00{b}", min(bs, left)))
        left -= bs
    if left > 0:
        parts.append(words.text(f"tail\x00{blocks[-1] if blocks else 0}", left))
    return "".join(parts)


def _rows(sess: Session, task: str, bs: int, framing: int, words: Hidden) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []  # (replaced at the first turn)
    prefixes = sess.prefixes()
    prev = None
    for k, turn in enumerate(sess.turns):
        grow = turn.input - prev.input - 2 * framing if prev is not None else 0
        if prev is None or grow < 2:
            # the first turn, or a context that shrank (a compaction, dropped reasoning): one
            # system message of the whole input; its leading blocks keep what they share
            size = max(1, turn.input - framing)
            messages = [{"role": "system", "content": _first(prefixes[k], size, bs, words)}]
        else:
            # the previous reply as it stays in the context (reasoning leaves it), then the rest
            kept = max(1, min(prev.output - (prev.reasoning or 0), grow - 1))
            reply = words.text(f"{task}\x00reply{k}", kept)
            messages.append({"role": "assistant", "content": reply})
            messages.append(
                {"role": "user", "content": words.text(f"{task}\x00turn{k}", grow - kept)}
            )
        nxt = sess.turns[k + 1] if k + 1 < len(sess.turns) else None
        delay = round((nxt.wait if nxt is not None else 0.0) * 1000.0, 3)
        row: dict[str, Any] = {
            "version": VERSION,
            "turn_id": f"{task}:{k:04d}",
            "task_id": task,
            "conversation_id": task,
            "conversation_idx": k,
            "messages": list(messages),
            "tools": [],
            "target_output_tokens": turn.output,
            "max_output_tokens": max(1, turn.output),
            "recorded_prompt_tokens": turn.usage_input if turn.usage_input else turn.input,
            "recorded_completion_tokens": turn.output,
            "simulated_tool_delay_ms_after": delay,
            "recorded_tool_calls_after": [
                {"duration_ms": delay, "tool_name": name} for name in turn.tool_calls
            ],
        }
        if turn.duration is not None:
            row["recorded_model_duration_ms"] = round(turn.duration * 1000.0, 3)
        rows.append(row)
        prev = turn
    return rows
