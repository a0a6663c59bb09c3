"""Import Alibaba Bailian (Qwen) anonymized usage traces: JSONL, one request per line, 16-token
SipHash blocks, no text.

Written from the dataset's public description (alibaba-edu/qwen-bailian-usagetraces-anon) and
AIPerf 0.13's `bailian_trace` loader, which reads the same rows:

    {"chat_id": 160, "parent_chat_id": 159, "timestamp": 62.5, "input_length": 521,
     "output_length": 80, "type": "text", "turn": 2, "hash_ids": [1089, 1090, ...]}

`timestamp` is seconds since the trace began; `hash_ids` are salted SipHash ids of the input's
16-token blocks (the last one partial), global within a file. Each row is a whole request. A
conversation is a chain of `parent_chat_id` links (`-1` = its first request): one session per
chain root, turns ordered by `turn` (then time). Bailian records no durations, so `wait` is the
gap between arrivals (an upper bound that includes the previous request's service time) and
`after` is `user`; `type` (text, search, image, file) has no corpus field.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from corpus.anonymizer import Anonymizer
from corpus.importers.base import Ids, Imported, Report, count, expand, json_lines, where
from corpus.importers.mooncake import Group, Row, imported

BLOCK_SIZE = 16
DOMAIN = "chat"
NOTES = (
    "bailian: sessions from chat_id/parent_chat_id chains; 16-token blocks; waits are arrival "
    "gaps; no durations"
)


def native_block_size(sources: list[Path]) -> int | None:
    return BLOCK_SIZE


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.jsonl",), "Bailian trace JSONL files")


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"'{name}' should be an integer, found {value!r}")
    return value


def _parse(path: Path, report: Report) -> list[tuple[int, int, int, Row]]:
    """(chat_id, parent_chat_id, turn, row) of every usable line."""
    out: list[tuple[int, int, int, Row]] = []
    with open(path, "rb") as f:
        for n, obj in json_lines(f, path, report):
            try:
                chat = _int(obj.get("chat_id"), "chat_id")
                parent = _int(obj.get("parent_chat_id", -1), "parent_chat_id")
                turn = _int(obj.get("turn", 1), "turn")
                ts = obj.get("timestamp")
                if isinstance(ts, bool) or not isinstance(ts, int | float) or not ts >= 0:
                    raise ValueError(f"'timestamp' should be seconds ≥ 0, found {ts!r}")
                inp = count(obj.get("input_length"), "input_length", required=True)
                assert inp is not None
                ids = obj.get("hash_ids") or []
                if not isinstance(ids, list) or not all(
                    isinstance(i, int) and not isinstance(i, bool) for i in ids
                ):
                    raise ValueError("'hash_ids' should be a list of integers")
                if len(ids) > math.ceil(inp / BLOCK_SIZE):
                    raise ValueError(
                        f"{len(ids)} hash_ids need more than {inp} input tokens "
                        f"at {BLOCK_SIZE} tokens per block"
                    )
                row = Row(
                    ts=float(ts),
                    delay=None,
                    input=inp,
                    output=count(obj.get("output_length"), "output_length") or 0,
                    ids=ids,
                )
            except ValueError as exc:
                report.skip(where(path, n), f"{exc}; row left out")
                continue
            out.append((chat, parent, turn, row))
    return out


def _chains(rows: list[tuple[int, int, int, Row]]) -> list[Group]:
    """One group per chain root, rows ordered by turn then time."""
    parent_of = {chat: parent for chat, parent, _, _ in rows}
    roots: dict[int, int] = {}

    def root(chat: int) -> int:
        seen = []
        while chat not in roots and parent_of.get(chat, -1) in parent_of and chat not in seen:
            seen.append(chat)
            chat = parent_of[chat]
        top = roots.get(chat, chat)
        for c in seen:
            roots[c] = top
        return top

    groups: dict[int, list[tuple[int, float, Row]]] = {}
    for chat, _, turn, row in rows:
        groups.setdefault(root(chat), []).append((turn, row.ts or 0.0, row))
    return [
        Group([r for _, _, r in sorted(members, key=lambda m: (m[0], m[1]))], sid=str(top))
        for top, members in groups.items()
    ]


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    for path in files(sources):
        rows = _parse(path, report)
        report.bytes_read += path.stat().st_size
        if not rows:
            continue
        origin = min(r.ts or 0.0 for _, _, _, r in rows)
        ids = Ids(anon, f"bailian\x00{path.resolve()}")
        groups = sorted(_chains(rows), key=lambda g: g.rows[0].ts or 0.0)
        for group in groups:
            yield imported(group, origin, ids, path, BLOCK_SIZE)
