"""Fixtures for stats tests: small corpora written with `corpus.Writer`.

`build(sessions, block_size=…)` writes a corpus and returns its path. A session is a dict with
`start`, optional `parent` (index of an earlier session in the list) and `turns`: each turn a
dict of `corpus.Turn` fields plus `blocks`, its FULL block-id list (the writer stores the
reuse/new split). Session-scoped, so hypothesis tests can use it too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from corpus import Header, Turn, Writer

Build = Callable[..., Path]


def write(path: Path, sessions: list[dict[str, Any]], block_size: int = 4) -> Path:
    with Writer(path, Header(block_size=block_size, domain="test"), keys=False) as w:
        ids: list[int] = []
        for s in sessions:
            parent = s.get("parent")
            sid = w.open_session(
                start=s.get("start", 0.0),
                parent=None if parent is None else ids[parent],
                agent=s.get("agent", ""),
            )
            ids.append(sid)
            for spec in s["turns"]:
                fields = {k: v for k, v in spec.items() if k != "blocks"}
                fields.setdefault("output", 1)
                w.add_turn(sid, Turn(**fields), spec.get("blocks", []))
            w.close_session(sid)
    return path


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    root = tmp_path_factory.mktemp("corpora")
    counter = itertools.count()

    def _build(sessions: list[dict[str, Any]], block_size: int = 4) -> Path:
        return write(root / f"c{next(counter)}.zst", sessions, block_size)

    return _build
