"""corpus.wire.linearize: segments per API, and prompts() for batched Completions requests."""

from __future__ import annotations

from typing import Any

import pytest

from corpus import TokenCache
from corpus.wire import apis, linearize
from corpus.wire.linearize import prompts, segments

BODIES: dict[str, dict[str, Any]] = {
    linearize.apis.OPENAI_CHAT: {
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
    },
    linearize.apis.OPENAI_RESPONSES: {"instructions": "s", "input": "u"},
    linearize.apis.ANTHROPIC: {"system": "s", "messages": [{"role": "user", "content": "u"}]},
    apis.OPENAI_COMPLETIONS: {"prompt": "u"},
}


def test_a_string_prompt_is_one_prompt_of_one_segment() -> None:
    body = {"prompt": "def f():"}
    assert segments(apis.OPENAI_COMPLETIONS, body) == ["def f():"]
    assert prompts(apis.OPENAI_COMPLETIONS, body) == [["def f():"]]


def test_a_list_of_strings_is_a_batch_of_prompts() -> None:
    body = {"prompt": ["first prompt", "second prompt", "third"]}
    # segments() keeps its behaviour: every prompt's segment, in order ...
    assert segments(apis.OPENAI_COMPLETIONS, body) == ["first prompt", "second prompt", "third"]
    # ... prompts() says which segments make up which prompt: one choice each.
    batch = prompts(apis.OPENAI_COMPLETIONS, body)
    assert batch == [["first prompt"], ["second prompt"], ["third"]]
    assert [s for p in batch for s in p] == segments(apis.OPENAI_COMPLETIONS, body)
    # Counted per prompt, each equals the prompt sent alone; the totals agree with segments().
    tokens = TokenCache()
    each = [tokens.count(p) for p in batch]
    assert each == [
        tokens.count(segments(apis.OPENAI_COMPLETIONS, {"prompt": text})) for text in body["prompt"]
    ]
    assert sum(each) == tokens.count(segments(apis.OPENAI_COMPLETIONS, body))


@pytest.mark.parametrize("prompt", [[1, 2, 3], [[1, 2], [3]], [], None, ["a", 1]])
def test_token_id_or_unreadable_prompts_have_no_text(prompt: Any) -> None:
    body = {} if prompt is None else {"prompt": prompt}
    assert segments(apis.OPENAI_COMPLETIONS, body) == []
    assert prompts(apis.OPENAI_COMPLETIONS, body) == []


@pytest.mark.parametrize("api", [a for a in apis.NAMES if a != apis.OPENAI_COMPLETIONS])
def test_other_apis_send_one_prompt(api: str) -> None:
    body = BODIES[api]
    assert prompts(api, body) == [segments(api, body)]
    assert len(segments(api, body)) >= 2


def test_prompts_are_normalized_like_segments() -> None:
    noisy = "x-anthropic-billing-header: cc_version=1; cch=abc123;\nhello"
    batch = prompts(apis.OPENAI_COMPLETIONS, {"prompt": [noisy, "plain"]})
    assert batch == [["x-anthropic-billing-header: cc_version=0; cch=0;\nhello"], ["plain"]]


def test_unknown_api_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown api"):
        prompts("openai-nope", {})
    with pytest.raises(ValueError, match="unknown api"):
        segments("openai-nope", {})
