"""The GPU and model catalogues: every number carries a source and a date, derived figures."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from replay.engine import calibration, catalog
from replay.engine.errors import CatalogError

REQUIRED_GPUS = {"h100", "h200", "b200", "b300", "gb200-nvl72", "gb300-nvl72", "mi300x",
                 "mi325x", "mi355x"}
REQUIRED_MODELS = {"deepseek-v3", "deepseek-v3.2", "gpt-oss-120b", "llama-3.1-70b",
                   "llama-3.1-405b", "qwen3-235b-a22b", "deepseek-v4-pro", "llama-2-70b"}
TEXT_FIELDS = {"name", "vendor", "attention"}


@pytest.mark.parametrize("name", ["gpus.toml", "models.toml"])
def test_every_catalogue_number_has_a_source_and_a_date(name: str) -> None:
    data = tomllib.loads((catalog.CATALOG_DIR / name).read_text())
    checked = 0
    for key, table in data.items():
        for field, raw in table.items():
            if field in TEXT_FIELDS:
                continue
            assert isinstance(raw, dict), f"{name} [{key}] {field} has no source"
            assert isinstance(raw["value"], int | float), (key, field)
            source, date = raw["source"], raw["date"]
            assert source.startswith(("https://", "estimate:", "assumed:")), (key, field)
            assert date[:4].isdigit(), (key, field, date)
            checked += 1
    assert checked > 50


def test_the_issue_lists_are_all_catalogued() -> None:
    assert REQUIRED_GPUS <= set(catalog.load_gpus())
    assert REQUIRED_MODELS <= set(catalog.load_models())


def test_estimates_are_marked_and_datasheet_figures_are_not() -> None:
    h100 = catalog.gpu("h100")
    assert h100.sources["idle_w"].estimated
    assert not h100.sources["hbm_tbps"].estimated
    assert catalog.model("deepseek-v4-pro").sources["layers"].estimated
    assert not catalog.model("deepseek-v4-pro").sources["params_total_b"].estimated


def test_kv_bytes_per_token_follow_the_configs() -> None:
    # Llama 3.1 70B: 2 (K, V) x 80 layers x 8 KV heads x 128 dims, one byte each in FP8.
    assert catalog.model("llama-3.1-70b").kv_bytes_per_token("fp8") == 163_840
    # DeepSeek V3: one 512 + 64 latent per layer, 61 layers, two bytes in BF16.
    assert catalog.model("deepseek-v3").kv_bytes_per_token("bf16") == 61 * 576 * 2
    # gpt-oss: only the 18 full-attention layers keep the whole context.
    assert catalog.model("gpt-oss-120b").kv_bytes_per_token("bf16") == 18 * 2 * 8 * 64 * 2


def test_moe_parameter_split_adds_up() -> None:
    v3 = catalog.model("deepseek-v3")
    # 3 x hidden x moe_intermediate (7168 x 2048) per routed expert in the public config.
    assert v3.expert_params() == pytest.approx(3 * 7168 * 2048, rel=0.02)
    assert v3.dense_params() + v3.routed_params() == pytest.approx(671e9)
    dense = catalog.model("llama-3.1-70b")
    assert dense.expert_params() == 0
    assert dense.dense_params() == pytest.approx(70.6e9)


def test_unknown_keys_name_the_choices() -> None:
    with pytest.raises(CatalogError, match="unknown GPU 'h300'.*h100"):
        catalog.gpu("h300")
    with pytest.raises(CatalogError, match="unknown model 'gpt-5'.*deepseek-v3"):
        catalog.model("gpt-5")


@pytest.fixture
def scratch_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("gpus.toml", "models.toml", "points.toml"):
        shutil.copy(catalog.CATALOG_DIR / name, tmp_path / name)
    monkeypatch.setattr(catalog, "CATALOG_DIR", tmp_path)
    monkeypatch.setattr(calibration, "CATALOG_DIR", tmp_path)
    catalog.load_gpus.cache_clear()
    catalog.load_models.cache_clear()
    calibration.load_points.cache_clear()
    yield tmp_path
    catalog.load_gpus.cache_clear()
    catalog.load_models.cache_clear()
    calibration.load_points.cache_clear()


def test_a_number_without_a_source_is_an_error_naming_the_field(scratch_catalog: Path) -> None:
    path = scratch_catalog / "gpus.toml"
    text = path.read_text().replace(
        'hbm_gb = { value = 141, source = "https://www.nvidia.com/en-us/data-center/h200/", '
        'date = "2024-11" }', "hbm_gb = 141")
    path.write_text(text)
    with pytest.raises(CatalogError, match=r"gpus.toml: \[h200\] hbm_gb: .*source URL"):
        catalog.load_gpus()


def test_a_source_that_is_not_a_url_or_an_explained_estimate_is_refused(
    scratch_catalog: Path,
) -> None:
    path = scratch_catalog / "models.toml"
    path.write_text(path.read_text().replace(
        "https://openai.com/index/introducing-gpt-oss/", "the internet", 1))
    with pytest.raises(CatalogError, match=r"\[gpt-oss-120b\] params_total_b: source"):
        catalog.load_models()


def test_calibration_points_are_sourced_and_cover_the_goal() -> None:
    points = calibration.load_points()
    assert len(points) >= 20
    assert len({p.gpu for p in points}) >= 4
    assert len({p.model for p in points}) >= 3
    assert len({p.source.split("/")[2] + p.id.split("-")[0] for p in points}) >= 3
    for p in points:
        assert p.source.startswith("https://"), p.id
        assert p.published[:4].isdigit(), p.id
        assert p.measured > 0
        catalog.gpu(p.gpu), catalog.model(p.model)


def test_agentperf_results_are_never_calibration_points() -> None:
    # AA-AgentPerf's agents/MW are the held-out validation of the calibrated model.
    for p in calibration.load_points():
        text = f"{p.id} {p.source} {p.summary} {p.note}".lower()
        assert "agentperf" not in text, p.id
        assert "artificialanalysis" not in text, p.id


def test_a_malformed_point_names_the_file_and_point(scratch_catalog: Path) -> None:
    path = scratch_catalog / "points.toml"
    path.write_text(path.read_text().replace('kind = "offline"', 'kind = "sometimes"', 1))
    with pytest.raises(CatalogError, match="points.toml: point mlperf-.*kind 'sometimes'"):
        calibration.load_points()
