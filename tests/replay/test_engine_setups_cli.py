"""`replay serve --gpu … --model …`: a modelled setup served live, and the error band line."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from replay.engine.cli import app


@contextmanager
def serving(*args: str) -> Iterator[tuple[str, list[str]]]:
    """Start `python -m replay.engine --port 0 ARGS`; yield its URL and next two lines."""
    with subprocess.Popen(
        [sys.executable, "-m", "replay.engine", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            first = proc.stdout.readline().rstrip("\n")
            match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)", first)
            assert match, first
            yield match[1], [proc.stdout.readline(), proc.stdout.readline()]
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_a_modelled_setup_serves_and_exports_one_power_series_per_gpu() -> None:
    with serving("--gpu", "h200", "--gpus", "8", "--model", "deepseek-v3", "--tp", "8",
                 "--ep", "8", "--precision", "fp8", "--kv-precision", "fp8",
                 "--spec-decode", "mtp:3:0.7") as (base, (described, band)):
        assert "8x h200 deepseek-v3 fp8 TP8 EP8 mtp:3:0.7" in described
        assert band.startswith("model error: calibrated roofline: median error")
        with urllib.request.urlopen(f"{base}/health", timeout=60) as r:
            assert b'"profile":"h200x8-deepseek-v3"' in r.read().replace(b" ", b"")
        with urllib.request.urlopen(f"{base}/metrics", timeout=60) as r:
            text = r.read().decode()
    power = [line for line in text.splitlines() if line.startswith("DCGM_FI_DEV_POWER_USAGE{")]
    assert len(power) == 8
    assert sum(float(line.rsplit(" ", 1)[1]) for line in power) == pytest.approx(600)


def test_profile_shortcuts_print_their_error_band() -> None:
    with serving("--profile", "h100") as (_, (_, band)):
        assert band.startswith("model error: uncalibrated")


def test_half_a_setup_is_a_clean_error() -> None:
    result = CliRunner().invoke(app, ["--gpu", "h200", "--port", "0"])
    assert result.exit_code == 1
    assert "--gpu and --model go together" in result.output


def test_a_model_that_does_not_fit_is_a_clean_error() -> None:
    result = CliRunner().invoke(app, ["--gpu", "h100", "--model", "llama-3.1-405b", "--port", "0"])
    assert result.exit_code == 1
    assert "needs about" in result.output
    assert "use more GPUs" in result.output
