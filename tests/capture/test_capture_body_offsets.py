"""Element end offsets: the separator fast path finds what `bytes.find` would, for any JSON
spacing (compact, `json.dumps` defaults, indented, CRLF, elements that repeat)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from capture.body import parse


def _offsets(raw: bytes, key: str) -> list[int]:
    """End offsets the slow way: each element's first occurrence after the previous one."""
    top = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    value = bytes(top[key])
    cursor = raw.index(value) + 1
    ends = []
    for elem in msgspec.json.decode(value, type=list[msgspec.Raw]):
        chunk = bytes(elem)
        cursor = raw.find(chunk, cursor) + len(chunk)
        ends.append(cursor)
    return ends


BODIES: list[tuple[str, Any]] = [
    ("compact", lambda b: json.dumps(b, separators=(",", ":"))),
    ("default", json.dumps),
    ("indented", lambda b: json.dumps(b, indent=2)),
    ("crlf", lambda b: json.dumps(b, indent="\t").replace("\n", "\r\n")),
]


@pytest.mark.parametrize(("name", "dump"), BODIES)
def test_offsets_match_find_full_and_incremental(name: str, dump: Any) -> None:
    msgs: list[Any] = [{"role": "user", "content": "same"}] * 3 + [1, "x", [], {}, None]
    raws = [dump({"model": "m", "messages": msgs[:n], "stream": True}).encode()
            for n in range(1, len(msgs) + 1)]
    memo = None
    for raw in raws:
        got = parse(raw, "messages", memo)
        assert got.ends == _offsets(raw, "messages"), name
        assert raw[got.close : got.close + 1] == b"]"
        got.notes = [None] * len(got.items)
        got.digests = [None] * len(got.items)
        memo = got
