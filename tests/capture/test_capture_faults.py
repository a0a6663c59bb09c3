"""The recorder under faults: a full disk, a recorder that falls behind, exchanges that finish
out of order. The agent's traffic is never affected; what is lost is counted and said."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path
from typing import Any

import capture_fixtures as fx
import pytest
from capture_harness import Cap, Stack
from capture_upstream import Script
from test_capture_proxy import both, chat_body

from capture.cli import Alerts, status_line
from capture.exchange import Exchange
from capture.recorder import Recorder
from corpus import Header, Reader, Writer

pytestmark = pytest.mark.timeout(60)


class FullDisk:
    """The writer's file on a file system that fills up: `write` fails with ENOSPC while
    `full` (as a full disk does), else passes through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.full = True

    def write(self, data: bytes) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_full_disk_never_touches_the_traffic_and_is_said_at_once(
    stack: Stack, tmp_path: Path
) -> None:
    cap = Cap(stack, tmp_path / "full.zst")
    disk = FullDisk(cap.recorder.writer._file)
    cap.recorder.writer._file = disk  # the seam: the file under the writer
    stack.upstream.scripts["disk"] = Script(fx.CHAT_TEXT_STREAM.split(b"\n\n", 2))
    alerts = Alerts()
    for i in range(3):
        body = chat_body([{"role": "user", "content": f"question {i}"}])
        direct, proxied = await both(stack, "disk", "v1/chat/completions", body)
        assert proxied == direct  # the agent sees exactly what the upstream sent
    cap.drain()
    cap.recorder.tick()  # the worker's timed flush: fails on the full disk
    stats = cap.stats
    assert stats.where.get("flush", 0) >= 1
    assert stats.last_error == "flush: No space left on device"
    (warning,) = alerts.check(stats, now=0.0)
    assert warning.startswith("recording is failing (flush: No space left on device;")
    assert "traffic is unaffected" in warning
    assert alerts.check(stats, now=1.0) == []  # said once, not on every tick
    assert "recorder errors" in status_line(stats).plain
    cap.close()  # Ctrl-C: closing on a full disk counts the failure, never raises
    assert stats.where.get("close", 0) >= 1


async def test_space_freed_later_keeps_every_turn_and_no_start_is_negative(
    stack: Stack, tmp_path: Path
) -> None:
    cap = Cap(stack, tmp_path / "freed.zst")
    disk = FullDisk(cap.recorder.writer._file)
    cap.recorder.writer._file = disk
    stack.upstream.scripts["freed"] = Script(fx.CHAT_TEXT_STREAM.split(b"\n\n", 2))
    for i in range(3):
        body = chat_body([{"role": "user", "content": f"topic {i}"}])
        direct, proxied = await both(stack, "freed", "v1/chat/completions", body)
        assert proxied == direct
    cap.drain()
    cap.recorder.tick()
    assert cap.stats.where.get("flush", 0) >= 1
    disk.full = False
    sessions = cap.sessions()
    assert sum(len(s.turns) for s in sessions) == 3  # pending frames written once space is back
    assert all(s.start >= 0 for s in sessions)


def exchange(unix: float, text: str) -> Exchange:
    body = json.dumps({"model": "gpt-4o", "stream": True,
                       "messages": [{"role": "user", "content": text}]}).encode()
    t = unix - 1000.0
    return Exchange(api="openai-chat", headers={}, unix=unix, t_start=t, request=[body],
                    t_sent=t, status=200, content_type="text/event-stream", t_headers=t + 0.1,
                    chunks=[(t + 0.2, fx.CHAT_TEXT_STREAM)], t_end=t + 0.3, size=len(body))


def test_an_exchange_that_began_first_but_finished_last_does_not_start_before_zero(
    tmp_path: Path,
) -> None:
    path = tmp_path / "order.zst"
    rec = Recorder(Writer(path, Header(domain="test")))
    rec.submit(exchange(1000.5, "short question, answered first"))  # sets the origin
    rec.submit(exchange(1000.0, "long question, begun earlier"))
    rec.close()
    sessions = list(Reader(path).sessions())
    assert len(sessions) == 2
    assert [s.start for s in sessions] == [0.0, 0.0]


def test_a_full_queue_sheds_new_exchanges_and_counts_them(tmp_path: Path) -> None:
    rec = Recorder(Writer(tmp_path / "q.zst", Header(domain="test")), max_queued=2)
    for i in range(5):  # no worker yet: the queue fills
        rec.submit(exchange(1000.0 + i, f"call {i}"))
    assert rec.stats.shed == 3
    (line,) = Alerts().check(rec.stats, now=0.0)
    assert line.startswith("the recorder is behind: 3 calls shed")
    assert "shed 3" in status_line(rec.stats).plain
    rec.close()  # the two queued ones are still recorded
    assert rec.stats.turns == 2


def test_the_queue_is_bounded_by_bytes_too(tmp_path: Path) -> None:
    rec = Recorder(Writer(tmp_path / "b.zst", Header(domain="test")), max_queued_bytes=1)
    rec.submit(exchange(1000.0, "first is always taken"))
    rec.submit(exchange(1001.0, "second would pass the byte bound"))
    assert rec.stats.shed == 1
    rec.close()
    assert rec.stats.turns == 1


async def test_a_recorder_that_falls_behind_sheds_without_touching_the_traffic(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = Cap(stack, tmp_path / "behind.zst", max_queued=1)
    release = threading.Event()
    real = Recorder.process

    def slow(self: Recorder, ex: Exchange) -> None:
        release.wait(30)  # the worker is stuck (a slow disk) until the test lets it go
        real(self, ex)

    monkeypatch.setattr(Recorder, "process", slow)
    stack.upstream.scripts["behind"] = Script(fx.CHAT_TEXT_STREAM.split(b"\n\n", 2))
    for i in range(4):
        body = chat_body([{"role": "user", "content": f"burst {i}"}])
        direct, proxied = await both(stack, "behind", "v1/chat/completions", body)
        assert proxied == direct
    release.set()
    cap.drain()
    assert cap.stats.shed >= 2  # one in the worker, one queued, the rest shed
    assert cap.stats.turns + cap.stats.shed == 4
    cap.close()
