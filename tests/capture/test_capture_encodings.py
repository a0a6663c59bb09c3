"""A response in an encoding the recorder can't read still gives a turn with its timing."""

from __future__ import annotations

import json
import time
from pathlib import Path

from capture.exchange import Exchange
from capture.recorder import Recorder
from corpus import Header, Reader, Writer


def test_unknown_response_encoding_keeps_the_turn_and_its_timing(tmp_path: Path) -> None:
    path = tmp_path / "c.zst"
    rec = Recorder(Writer(path, Header(domain="test")))
    t = time.perf_counter()
    body = {"model": "m", "messages": [{"role": "user", "content": "synthetic"}]}
    rec.process(
        Exchange(
            api="openai-chat", headers={}, unix=time.time(), t_start=t,
            request=[json.dumps(body).encode()], t_sent=t + 0.001, status=200,
            content_type="application/json", t_headers=t + 0.002,
            chunks=[(t + 0.01, b"\x00opaque")], t_end=t + 0.5,
            response_encoding="x-made-up",
        )
    )
    rec.close()
    [session] = list(Reader(path).sessions())
    [turn] = session.turns
    assert turn.input > 0
    assert turn.status == 200
    assert turn.duration is not None
    assert 0.009 <= turn.duration <= 0.011  # measured to the last chunk
    assert rec.stats.errors == 0
