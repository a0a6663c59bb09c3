"""The one table of LLM APIs: the name a corpus records, the path a server serves, and aliases.

Corpus files, capture, the importers, replay and the simulated engine all name an API by its
`name` here (`openai-chat`, …). Replay's `--api chat|completions|anthropic|responses` are
aliases, resolved through `resolve`. Paths are relative to an API base ending in its version
segment (`http://host:8000/v1` + `/chat/completions`).
"""

from __future__ import annotations

from typing import NamedTuple

OPENAI_CHAT = "openai-chat"
OPENAI_RESPONSES = "openai-responses"
OPENAI_COMPLETIONS = "openai-completions"
ANTHROPIC = "anthropic-messages"


class Api(NamedTuple):
    """One API: its corpus `name`, the `path` it is served at and the short `alias`."""

    name: str
    path: str
    alias: str


# longest path first, so that a suffix match finds `/chat/completions` before `/completions`
TABLE: tuple[Api, ...] = (
    Api(OPENAI_CHAT, "/chat/completions", "chat"),
    Api(OPENAI_RESPONSES, "/responses", "responses"),
    Api(OPENAI_COMPLETIONS, "/completions", "completions"),
    Api(ANTHROPIC, "/messages", "anthropic"),
)
NAMES: tuple[str, ...] = tuple(a.name for a in TABLE)
BY_NAME: dict[str, Api] = {a.name: a for a in TABLE}
_LOOKUP: dict[str, Api] = {**{a.alias: a for a in TABLE}, **BY_NAME}


def resolve(name: str) -> str:
    """The API `name` or alias stands for, as its corpus name; ValueError naming the choices."""
    found = _LOOKUP.get(name)
    if found is None:
        choices = ", ".join(f"{a.name} ({a.alias})" for a in TABLE)
        raise ValueError(f"unknown api {name!r}; expected one of {choices}")
    return found.name


def path(name: str) -> str:
    """The path (after the API base) that serves `name` (a corpus name or an alias)."""
    return BY_NAME[resolve(name)].path


def for_path(url_path: str) -> str | None:
    """The API whose path `url_path` ends with (gateways add prefixes), or None."""
    url_path = url_path.split("?", 1)[0].rstrip("/")
    for api in TABLE:
        if url_path.endswith(api.path):
            return api.name
    return None
