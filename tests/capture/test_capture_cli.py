"""The `capture` command as a process: kill -9 keeps every flushed frame, a restart appends
with consistent ids, Ctrl-C closes cleanly; and its argument handling."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from capture.errors import CaptureError
from capture.listeners import Listener, parse_listen, parse_upstream, plan
from corpus import CorpusError, Reader
from replay.engine import Running

HANG = 300.0
"""SDK clients' time-out, a hang guard: their default 5 s connect time-out runs on the
client's event loop, which a loaded machine can stall for longer (seen: ConnectTimeout on
loopback with the connection already accepted)."""

pytestmark = pytest.mark.timeout(300)

SYSTEM = "You review commercial leases for a property firm and flag unusual clauses. " * 20
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(path: Path, upstream: str, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "capture", "--upstream", upstream, "--listen", f"127.0.0.1:{port}",
         "-o", str(path), "--domain", "legal", "--confdir", str(tmp / "mitm"), "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120  # a guard against a hang, not a speed check
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"capture exited: {proc.communicate()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("capture did not start listening")


def converse(url: str, first: str, *, turns: int = 3,
             history: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """`turns` turns of a chat (continuing `history` when given); returns the messages."""
    messages = history if history is not None else [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": first}]
    with openai.OpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0, timeout=HANG) as client:
        for i in range(turns):
            reply = client.chat.completions.create(model="lease-model", messages=messages,
                                                   max_tokens=8)
            messages += [{"role": "assistant", "content": reply.choices[0].message.content},
                         {"role": "user", "content": f"and clause {len(messages)}-{i}?"}]
    return messages


def on_disk(path: Path) -> int:
    """Turns a reader finds in the file now (a frame being written reads as a torn tail)."""
    try:
        return sum(len(s.turns) for s in Reader(path).sessions())
    except CorpusError:
        return 0


def test_kill_keeps_every_flushed_frame_and_restart_appends(
    engine: Running, tmp_path: Path
) -> None:
    path = tmp_path / "legal.zst"
    proc, url = start(path, engine.url, tmp_path)
    messages = converse(url, "Check the break clause.", turns=6)
    # the writer's periodic flush puts them on disk with no close: wait for that (an event,
    # however slow the machine), then talk on and kill the proxy mid-conversation
    deadline = time.monotonic() + 120
    while on_disk(path) < 6:
        assert time.monotonic() < deadline, "the periodic flush never wrote the turns"
        time.sleep(0.05)
    converse(url, "Check the break clause.", turns=3, history=messages)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    reader = Reader(path)
    first = list(reader.sessions())
    assert reader.damage is None or reader.damage.kind == "truncated"
    assert len(first) == 1
    assert len(first[0].turns) >= 6  # what was flushed before the kill is all there
    assert first[0].agent == "openai-python"
    assert reader.header.domain == "legal"

    proc, url = start(path, engine.url, tmp_path)
    converse(url, "Check the rent review clause.", turns=2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "OPENAI_BASE_URL" in out
    assert "wrote" in out
    reader = Reader(path)
    sessions = sorted(reader.sessions(), key=lambda s: s.id)
    assert reader.damage is None
    assert [s.id for s in sessions] == [0, 1]
    old, new = (s.prefixes()[0] for s in sessions)
    assert len(old) > 4
    assert old[:4] == new[:4]
    assert sessions[1].start > sessions[0].start  # one time origin across both runs
    table = reader.table()
    assert list(table.sessions["closed"]) == [False, True]  # killed run: never closed


def test_arguments() -> None:
    assert parse_listen("8081") == ("127.0.0.1", 8081)
    assert parse_listen("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_upstream("https://gw.example.com/openai/") == ("https://gw.example.com",
                                                               "/openai")
    got = plan(["https://api.anthropic.com", "https://api.openai.com"], [], forward=False)
    assert [(li.port, li.upstream) for li in got] == [
        (8081, "https://api.anthropic.com"), (8082, "https://api.openai.com")]
    assert got[0].spec == "reverse:https://api.anthropic.com@127.0.0.1:8081"
    assert plan([], ["127.0.0.1:3128"], forward=True) == [Listener("127.0.0.1", 3128)]
    for bad in (lambda: plan([], [], forward=False),
                lambda: plan(["ftp://x"], [], forward=False),
                lambda: plan(["https://a"], ["1", "2"], forward=False),
                lambda: parse_listen("host:port")):
        with pytest.raises(CaptureError):
            bad()


def test_bad_arguments_are_one_error_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from capture.cli import app

    result = CliRunner().invoke(app, ["-o", str(tmp_path / "x.zst")])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:")
    assert "--upstream" in result.output
    assert not (tmp_path / "x.zst").exists()


def test_forward_mode_records_model_calls_and_tunnels_the_rest(engine: Running,
                                                               tmp_path: Path) -> None:
    import http.client

    path = tmp_path / "fwd.zst"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "capture", "--forward", "--listen", f"127.0.0.1:{port}",
         "-o", str(path), "--confdir", str(tmp_path / "mitm"), "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120  # a hang guard
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.05)
        host, eport = engine.url.removeprefix("http://").split(":")
        body = '{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}'
        headers = {"Content-Type": "application/json"}

        def call(conn: http.client.HTTPConnection, target: str) -> dict[str, Any]:
            try:
                conn.request("POST", target, body, headers)
                reply = json.loads(conn.getresponse().read())
            finally:
                conn.close()
            return {k: v for k, v in reply.items() if k not in ("id", "created")}

        # a plain-HTTP model call through the proxy (absolute-form request) is recorded
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        assert call(plain, f"{engine.url}/v1/chat/completions")["choices"]
        # a CONNECT tunnel to a host that is not an LLM API is passed through, not decrypted
        # or parsed: the same call inside it is not recorded
        tunnel = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        tunnel.set_tunnel(host, int(eport))
        direct = http.client.HTTPConnection(host, int(eport), timeout=60)
        assert call(tunnel, "/v1/chat/completions") == call(direct, "/v1/chat/completions")
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "HTTPS_PROXY" in out
    assert "NODE_EXTRA_CA_CERTS" in out
    sessions = list(Reader(path).sessions())
    assert len(sessions) == 1
    assert len(sessions[0].turns) == 1


def test_library_errors_name_parameters_and_the_cli_says_flags() -> None:
    from capture.errors import flagged

    with pytest.raises(CaptureError) as info:
        plan(["https://a"], ["1"], forward=True)
    assert str(info.value) == "forward takes no upstream: agents choose their own hosts"
    assert flagged(info.value) == "--forward takes no --upstream: agents choose their own hosts"
    with pytest.raises(CaptureError) as info:
        parse_listen("host:port")
    assert flagged(info.value).startswith("--listen 'host:port': expected HOST:PORT")
