"""What the simulated engine "generates": countable text and seeded natural output lengths.

Output text cycles through `WORDS`, each exactly one cl100k_base token with its leading space,
so tiktoken's count of a response's text equals the completion tokens the engine reports.
"""

from __future__ import annotations

import json
import math
import random

WORDS: tuple[str, ...] = tuple(
    " " + w
    for w in (
        "the model reads each line of code and then writes a short plan for next step so that "
        "tests pass with clear names small functions careful error handling simple data flow "
        "good logs fast checks stable output across every run while agents wait tools to "
        "return results from files search shell commands network calls or user input before "
        "they continue working on tasks"
    ).split()
)
_N = len(WORDS)


def text(start: int, count: int) -> str:
    """Text of output tokens `start .. start+count-1` (one word per token)."""
    if count == 1:
        return WORDS[start % _N]
    return "".join([WORDS[i % _N] for i in range(start, start + count)])


def natural_length(key: int, seed: int, median: int) -> int:
    """Seeded "end of sequence" position for a prompt: log-normal around `median`, at least 1.

    Same prompt (`key`) and seed give the same length, so runs are reproducible.
    """
    rng = random.Random(hash((seed, key)))
    return max(1, round(rng.lognormvariate(math.log(max(1, median)), 0.9)))


class ToolArguments:
    """Frames generated tokens as the JSON arguments of a tool call: `{"<key>":"<words>"}`.

    The braces, key and quotes are framing, not counted as tokens; the arguments are valid JSON
    once `close()` is appended, whatever the number of tokens.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def open(self) -> str:
        return "{" + json.dumps(self.key) + ':"'

    @staticmethod
    def close() -> str:
        return '"}'

    def whole(self, count: int) -> str:
        """Complete arguments for `count` tokens."""
        return self.open() + text(0, count) + self.close()
