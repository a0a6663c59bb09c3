"""`replay engines`: the catalogue listing, one setup's view, the backtest (text and JSON)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from replay.cli import main
from replay.engine.catalog_cli import app
from replay.engine.setups import CALIBRATION_FILE


def test_engines_lists_every_gpu_and_model_with_the_error_band() -> None:
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 0, result.output
    for key in ("h100", "gb300-nvl72", "mi355x", "deepseek-v3.2", "gpt-oss-120b",
                "qwen3-235b-a22b", "deepseek-v4-pro*"):
        assert key in result.output
    assert "error band: median" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_engines_json_carries_kv_bytes_and_marks_estimates() -> None:
    result = CliRunner().invoke(app, ["--json"])
    data = json.loads(result.output)
    assert data["models"]["llama-3.1-70b"]["kv_bytes_per_token"]["fp8"] == 163_840
    assert data["gpus"]["h200"]["estimated"] == ["idle_w"]
    assert data["error_band"]["points"] >= 20


def test_engines_backtest_json_reports_every_point() -> None:
    result = CliRunner().invoke(app, ["--backtest", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["points"]) >= 20
    for point in data["points"]:
        assert {"gpu", "model", "error", "measured", "predicted", "source"} <= set(point)
    errors = sorted(abs(p["error"]) for p in data["points"])
    assert data["max_abs_error"] == errors[-1]
    assert len({p["gpu"] for p in data["points"]}) >= 4
    stored = json.loads(CALIBRATION_FILE.read_text())
    assert stored["median_abs_error"] == data["median_abs_error"]


def test_engines_backtest_prints_a_table_and_the_summary() -> None:
    result = CliRunner().invoke(app, ["--backtest"])
    assert result.exit_code == 0
    assert "median |error|" in result.output
    assert "MLPerf 5.1-0069" in result.output


def test_one_setup_view_shows_capacity_speed_and_band() -> None:
    result = CliRunner().invoke(app, ["--gpu", "b200", "--model", "gpt-oss-120b", "--precision",
                                      "fp4", "--json"])
    view = json.loads(result.output)
    assert view["kv_capacity_tokens"] > 1_000_000
    speeds = view["decode_tok_s_per_stream_at_8k_context"]
    assert speeds["1"] > speeds["64"] > 0
    assert "median error" in view["error_band"]


def test_save_needs_backtest() -> None:
    result = CliRunner().invoke(app, ["--save"])
    assert result.exit_code == 1
    assert "add --backtest" in result.output


def test_replay_engines_is_mounted_on_the_replay_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["engines", "--json"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "gb200-nvl72" in json.loads(out)["gpus"]
