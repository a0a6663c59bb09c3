"""The real-engine tier: one vLLM server (CPU build, tiny random-weight model) per test session.

Marked `realengine`; `pytest -m "not realengine"` runs only the fast tiers. Without the vLLM
venv (`tests/realengine/setup_vllm.sh`) the tier skips, unless AGENTLOAD_REALENGINE=1 (set by
`.ci/run`) makes a missing venv an error: in CI the tier must run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# fixtures_replay.make_corpus, capture_harness.Background/Cap
sys.path[:0] = [str(Path(__file__).parent.parent / "replay"),
                str(Path(__file__).parent.parent / "capture")]

import vllm_server  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realengine)
            item.add_marker(pytest.mark.timeout(1800))


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    python = vllm_server.venv_dir() / "bin" / "python"
    ready = vllm_server.venv_dir() / ".agentload-ready"
    if not ready.exists():
        message = (f"no vLLM venv at {vllm_server.venv_dir()}: run tests/realengine/setup_vllm.sh "
                   "(or set AGENTLOAD_VLLM_VENV)")
        if os.environ.get("AGENTLOAD_REALENGINE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return python


@pytest.fixture(scope="session")
def vllm(
    vllm_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[vllm_server.Server]:
    tmp = tmp_path_factory.mktemp("vllm")
    model = vllm_server.make_model(vllm_python, tmp / "model")
    server = vllm_server.start(vllm_python, model, tmp / "vllm.log")
    try:
        yield server
    finally:
        server.stop()
