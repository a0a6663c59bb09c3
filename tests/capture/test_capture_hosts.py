"""Which hosts forward mode intercepts: the allow-list patterns mitmproxy matches `host:port`
against."""

from __future__ import annotations

import re

import pytest

from capture.hosts import allow_hosts, pattern


@pytest.mark.parametrize(
    ("host", "yes", "no"),
    [
        ("api.openai.com", ["api.openai.com:443"],
         ["xapi.openai.com:443", "api.openai.com.evil:443", "api.openai.com"]),
        ("*.openai.azure.com", ["acme.openai.azure.com:443", "a.b.openai.azure.com:8443"],
         ["openai.azure.com:443", "acme.openai.azure.com.evil.net:443"]),
        ("*-aiplatform.googleapis.com", ["us-east5-aiplatform.googleapis.com:443"],
         ["aiplatform.googleapis.com:443", "x.us-east5-aiplatform.googleapis.com:443",
          "us-east5-aiplatform.googleapis.com.evil:443"]),
    ],
)
def test_patterns_match_whole_host_and_port(host: str, yes: list[str], no: list[str]) -> None:
    rx = re.compile(pattern(host))
    for addr in yes:
        assert rx.search(addr), addr
    for addr in no:
        assert not rx.search(addr), addr


def test_cloud_claude_hosts_are_intercepted_and_nothing_else_of_google() -> None:
    rules = [re.compile(p) for p in allow_hosts(["llm.internal.example"])]

    def hit(addr: str) -> bool:
        return any(r.search(addr) for r in rules)

    assert hit("us-east5-aiplatform.googleapis.com:443")
    assert hit("aiplatform.googleapis.com:443")
    assert hit("llm.internal.example:443")
    assert not hit("storage.googleapis.com:443")
    assert not hit("github.com:443")
