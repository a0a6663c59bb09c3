"""corpus.wire.apis: one vocabulary of API names, replay's short names as aliases, one path each."""

from __future__ import annotations

import pytest

from corpus.wire import apis


@pytest.mark.parametrize(
    ("name", "canonical", "path"),
    [("chat", "openai-chat", "/chat/completions"), ("openai-chat", "openai-chat",
      "/chat/completions"), ("completions", "openai-completions", "/completions"),
     ("anthropic", "anthropic-messages", "/messages"),
     ("responses", "openai-responses", "/responses")],
)
def test_names_and_aliases_resolve_to_one_name_and_path(
    name: str, canonical: str, path: str,
) -> None:
    assert apis.resolve(name) == canonical
    assert apis.path(name) == path


def test_an_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown api 'gemini'.*openai-chat \(chat\)"):
        apis.resolve("gemini")


@pytest.mark.parametrize(
    ("path", "api"),
    [("/v1/chat/completions", "openai-chat"), ("/openai/v1/chat/completions/", "openai-chat"),
     ("/v1/completions?x=1", "openai-completions"), ("/backend-api/codex/responses",
      "openai-responses"), ("/v1/messages", "anthropic-messages"), ("/v1/models", None)],
)
def test_a_path_names_its_api_by_suffix(path: str, api: str | None) -> None:
    assert apis.for_path(path) == api
