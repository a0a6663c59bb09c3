"""`python -m replay.engine` (mounted as `replay serve`): port 0, first line, clean exit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

from typer.testing import CliRunner

from replay.engine.cli import app


def test_port_zero_prints_the_chosen_port_first_and_serves() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "replay.engine", "--port", "0", "--profile", "instant"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            first = proc.stdout.readline().rstrip("\n")
            match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)", first)
            assert match, first
            with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/health", timeout=60) as r:
                health = json.loads(r.read())
                assert r.headers["x-agentload-engine"] == "simulated"
            assert health == {"status": "ok", "engine": "simulated", "profile": "instant"}
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_unknown_profile_is_a_clean_error() -> None:
    result = CliRunner().invoke(app, ["--profile", "nope", "--port", "0"])
    assert result.exit_code == 1
    assert "unknown engine profile 'nope'" in result.output
    assert "b200, h100, instant" in result.output
