"""Shared fixtures for replay tests: the simulated engine served on loopback, port 0.

`engine_url` is one session-wide `instant` engine (zero modelled cost): OpenAI clients use
`engine_url + "/v1"`, Anthropic clients `engine_url`. `start_engine(profile, **options)` starts
a private engine (any profile or `Profile`, `max_queue=`, `time_scale=`) for the test's duration.
`scrape(url)` fetches and parses its /metrics.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from replay.engine import Profile, Running, serve_in_thread

Metrics = dict[str, float]


def parse_metrics(text: str) -> Metrics:
    """Prometheus text -> {sample name: value summed over label sets}; also keeps
    `name{labels}` keys for exact lookups and `# TYPE` lines as `TYPE name` -> 0."""
    out: Metrics = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP"):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            out[f"TYPE {name} {kind}"] = 0
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        out[series] = float(value)
        out[name] = out.get(name, 0.0) + float(value)
    return out



@pytest.fixture(scope="session")
def engine_server() -> Iterator[Running]:
    with serve_in_thread("instant") as running:
        yield running


@pytest.fixture(scope="session")
def engine_url(engine_server: Running) -> str:
    return engine_server.url


@pytest.fixture
def start_engine() -> Iterator[Callable[..., Running]]:
    with ExitStack() as stack:

        def start(profile: str | Profile = "instant", **options: object) -> Running:
            return stack.enter_context(serve_in_thread(profile, **options))

        yield start


@pytest.fixture(scope="session")
def scrape() -> Callable[[str], Metrics]:
    def get(url: str) -> Metrics:
        with urllib.request.urlopen(url + "/metrics", timeout=60) as resp:
            return parse_metrics(resp.read().decode())

    return get
