"""PNG plots for slides (`replay report RUN.json --png DIR`, matplotlib)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from run_samples import make_run
from typer.testing import CliRunner

from replay import plots
from replay import results as res
from replay.errors import ConfigError
from replay.report_cli import report_app


def test_report_writes_one_png_per_figure(tmp_path: Path) -> None:
    src = tmp_path / "run.json"
    src.write_bytes(res.dumps(make_run()))
    result = CliRunner().invoke(report_app, [str(src), "--png", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    assert "wrote 5 plots" in result.output
    for stem in ("speed", "ttft", "throughput", "power", "cache"):
        data = (tmp_path / "png" / f"{stem}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(data[16:20], "big") == 960  # 6.4 in at 150 dpi
        assert len(data) > 10_000
    again = CliRunner().invoke(report_app, [str(src), "--png", str(tmp_path / "png")])
    assert again.exit_code == 1
    assert "speed.png: already exists; pass --force" in " ".join(again.output.split())
    forced = CliRunner().invoke(report_app, [str(src), "--png", str(tmp_path / "png"), "--force"])
    assert forced.exit_code == 0, forced.output


def test_without_matplotlib_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"pip install 'agentload\[plot\]'"):
        plots.write(make_run(), tmp_path)
