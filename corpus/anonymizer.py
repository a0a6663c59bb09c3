"""From request content to anonymous numbers: token counts, block ids, tool-name pseudonyms.

A request is a list of segments (see `corpus.linearize`). Block j's digest is a keyed BLAKE2b
over (digest of block j-1, token ids of block j), so equal ids mean equal prefixes and nothing
can be confirmed without the key. Results are memoized along a trie of segment prefixes: a
request that extends an earlier one (the next turn of a conversation, or another conversation
with the same tools and system prompt) only tokenizes and hashes its new segments.
"""

from __future__ import annotations

import hashlib
import itertools
from array import array
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from corpus import linearize, tokenizer
from corpus.keys import Keys
from corpus.records import DEFAULT_BLOCK_SIZE
from corpus.tokencache import TokenCache, digest

# Tool names kept in clear: well-known agent tools, whose names say nothing about the user.
KNOWN_TOOLS = frozenset(
    # Claude Code
    "Agent Bash BashOutput Edit ExitPlanMode Glob Grep KillShell LS MultiEdit NotebookEdit "
    "NotebookRead Read Skill SlashCommand Task TodoRead TodoWrite WebFetch WebSearch Write "
    # Codex and OpenAI agents
    "apply_patch exec_command local_shell shell update_plan view_image web_search write_stdin "
    "computer code_interpreter file_search "
    # SWE-agent, OpenHands, mini-swe-agent, Aider-style tools
    "bash str_replace_editor str_replace_based_edit_tool submit finish think execute_bash "
    "read_file write_file edit_file list_files list_directory search_files grep glob".split()
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the corpus keeps of one request: its token count and full block-id list."""

    tokens: int
    blocks: list[int]


class _Node:
    __slots__ = ("chain", "ids", "ntok", "parent", "tail")

    def __init__(
        self, parent: _Node | None, ntok: int, chain: bytes, tail: array[int], ids: list[int]
    ) -> None:
        self.parent = parent
        self.ntok = ntok  # tokens from the start of the request through this segment
        self.chain = chain  # digest of the last full block so far
        self.tail = tail  # tokens after the last full block (fewer than block_size)
        self.ids = ids  # ids of the full blocks completed inside this segment


_ROOT_CHAIN = bytes(16)


class Anonymizer:
    """Tokenizes, hashes and pseudonymizes with the key of one corpus (`Writer.keys`)."""

    def __init__(
        self,
        keys: Keys,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        tokenizer_name: str = tokenizer.DEFAULT,
        max_nodes: int = 200_000,
        cache_tokens: int = 20_000_000,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block size must be ≥ 1, got {block_size}")
        self.keys = keys
        self.block_size = block_size
        self.cache = TokenCache(tokenizer_name, max_tokens=cache_tokens, compact=True)
        self._root = _Node(None, 0, _ROOT_CHAIN, array("I"), [])
        self._nodes: OrderedDict[bytes, _Node] = OrderedDict()
        self._max_nodes = max_nodes
        self._last: tuple[list[str], list[tuple[bytes, bytes]]] = ([], [])
        self._last_ids: tuple[_Node | None, list[int]] = (None, [])
        self.new_tokens = 0  # tokens hashed because no earlier request had that prefix

    # -- prompts --------------------------------------------------------------------------

    def request(self, api: str, body: Mapping[str, Any]) -> Prompt:
        """Token count and block ids of an API request body."""
        return self.prompt(linearize.segments(api, body))

    def prompt(self, segments: list[str]) -> Prompt:
        """Token count and block ids of a request given as linearized segments."""
        # The leading segments shared with the previous request (the same objects when an
        # importer renders each message once, else equal text) reuse its path keys, so a
        # conversation's next turn only digests its new segments.
        last_segs, last_path = self._last
        n, m = 0, min(len(last_segs), len(segments))
        while n < m and (segments[n] is last_segs[n] or segments[n] == last_segs[n]):
            n += 1
        path: list[tuple[bytes, bytes]] = last_path[:n]
        key = path[-1][0] if path else b""
        for seg in segments[n:]:
            sd = digest(seg)
            key = hashlib.blake2b(key + sd, digest_size=16).digest()
            path.append((key, sd))
        self._last = (list(segments), path)
        node, depth = self._root, 0
        for i in range(len(path) - 1, -1, -1):
            found = self._nodes.get(path[i][0])
            if found is not None:
                self._nodes.move_to_end(path[i][0])
                node, depth = found, i + 1
                break
        for i in range(depth, len(path)):
            node = self._extend(node, segments[i], path[i][1])
            self._nodes[path[i][0]] = node
        while len(self._nodes) > self._max_nodes:
            self._nodes.popitem(last=False)
        # Full-block ids along the path; only the nodes below the previous request's node are
        # walked (a conversation's next turn), the rest is a copy of its list.
        base_node, base_ids = self._last_ids
        parts: list[list[int]] = []
        walk: _Node | None = node
        while walk is not None and walk is not base_node:
            if walk.ids:
                parts.append(walk.ids)
            walk = walk.parent
        full = list(itertools.chain.from_iterable(reversed(parts)))
        if walk is not None:
            full = base_ids + full
        self._last_ids = (node, full)
        blocks = list(full)
        if node.tail:
            blocks.append(self.keys.id(self.keys.mac(node.chain + node.tail.tobytes())))
        return Prompt(node.ntok, blocks)

    def _extend(self, node: _Node, segment: str, key: bytes) -> _Node:
        toks = self.cache.array(segment, key)
        self.new_tokens += len(toks)
        bs = self.block_size
        pending = node.tail + toks if node.tail else toks
        full = len(pending) - len(pending) % bs
        chain = node.chain
        ids: list[int] = []
        if full:
            raw = pending.tobytes()  # one conversion, then byte slices per block
            size = bs * pending.itemsize
            mac, assign = self.keys.mac, self.keys.id
            for j in range(0, full * pending.itemsize, size):
                chain = mac(chain + raw[j : j + size])
                ids.append(assign(chain))
        return _Node(node, node.ntok + len(toks), chain, pending[full:], ids)

    # -- other anonymous numbers ----------------------------------------------------------

    def count(self, text: str) -> int:
        """Tokens in generated text (when the provider reports no usage)."""
        return len(self.cache.array(text))

    def tool(self, name: str) -> str:
        """A tool name as the corpus stores it: in clear if well known, else a keyed id."""
        return name if name in KNOWN_TOOLS else f"tool-{self.keys.tag(name)}"

    def foreign(self, scope: str, block: int | str) -> int:
        """Corpus id of a block id from a hash-only source; `scope` says where the source's id
        is unique (a whole Mooncake file, one WEKA trace), so equal ids in different scopes
        stay different."""
        return self.keys.id(self.keys.mac(f"{scope}\x00{block}".encode()))

    def unique(self) -> int:
        """A block id shared with nothing (a partial tail a hash-only source doesn't hash)."""
        return self.keys.id(self.keys.mac(b"unique\x00" + len(self.keys).to_bytes(8, "little")))
