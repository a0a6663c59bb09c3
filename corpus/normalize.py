"""Rules that blank out volatile prompt content before hashing, so it can't fake prefix misses.

Each rule is a documented regular expression applied to every linearized segment. A rule only
ever replaces text with a fixed placeholder, so the token count changes by at most a few tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    replacement: str
    why: str


RULES: tuple[Rule, ...] = (
    Rule(
        "claude-code-billing-nonce",
        re.compile(r"(x-anthropic-billing-header:[^\n]*?\bcch=)[0-9A-Za-z_-]+"),
        r"\g<1>0",
        "Claude Code prefixes its system prompt with a billing header whose `cch=` value changes "
        "on every request; left alone, every request would miss the cache at block 0.",
    ),
    Rule(
        "claude-code-billing-version",
        re.compile(r"(x-anthropic-billing-header:[^\n]*?\bcc_version=)[0-9A-Za-z._-]+"),
        r"\g<1>0",
        "The same header carries the client build, which changes between restarts of one session, "
        "and (Claude Code 2.1: `cc_version=2.1.197.c4a`) a fingerprint of the conversation's first "
        "user message, which differs between conversations that share the whole system prompt.",
    ),
    Rule(
        "claude-code-billing-entrypoint",
        re.compile(r"(x-anthropic-billing-header:[^\n]*?\bcc_entrypoint=)[0-9A-Za-z._-]+"),
        r"\g<1>0",
        "How Claude Code was started (`cli` interactive, `sdk-cli` for `-p`, IDE and SDK names): "
        "client metadata, not prompt content (Claude Code leaves this whole block out of its own "
        "prompt-cache hash), so it must not split sessions' otherwise equal block 0.",
    ),
    Rule(
        "claude-code-billing-workload",
        re.compile(r"(x-anthropic-billing-header:[^\n]*?\bcc_workload=)[0-9A-Za-z._-]+"),
        r"\g<1>0",
        "The optional workload tag (e.g. scheduled `cron` runs) in the same header, likewise.",
    ),
)


def normalize(text: str) -> str:
    """`text` with every volatile-content rule applied (identity when none matches)."""
    if "x-anthropic-billing-header" not in text:  # fast path: all current rules share this marker
        return text
    for rule in RULES:
        text = rule.pattern.sub(rule.replacement, text)
    return text
