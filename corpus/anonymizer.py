"""From request content to anonymous numbers: token counts, block ids, tool-name pseudonyms.

A request is a list of segments (see `corpus.wire.linearize`). Block j's digest is a keyed BLAKE2b
over (digest of block j-1, token ids of block j), so equal ids mean equal prefixes and nothing
can be confirmed without the key. Results are memoized along a trie of segment prefixes: a
request that extends an earlier one (the next turn of a conversation, or another conversation
with the same tools and system prompt) only tokenizes and hashes its new segments. The last
request of each recent conversation is kept segment by segment, so a conversation's next turn
also only digests and looks up its new segments, however its requests interleave with others'.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from corpus import tokenizer
from corpus.keys import DIGEST, Keys
from corpus.records import DEFAULT_BLOCK_SIZE
from corpus.tokencache import TokenCache, digest
from corpus.wire import linearize

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
    __slots__ = ("chain", "ids", "ntok", "parent", "tail", "tail_id")

    def __init__(
        self, parent: _Node | None, ntok: int, chain: bytes, tail: array[int], ids: list[int]
    ) -> None:
        self.parent = parent
        self.ntok = ntok  # tokens from the start of the request through this segment
        self.chain = chain  # digest of the last full block so far
        self.tail = tail  # tokens after the last full block (fewer than block_size)
        self.ids = ids  # ids of the full blocks completed inside this segment
        self.tail_id = -1  # id of the partial last block, once asked for


class _Conversation:
    """The last request of one conversation, segment by segment, so that its next request
    only digests, looks up and hashes what it adds."""

    __slots__ = ("digests", "ids", "keys", "nodes", "segments")

    def __init__(self) -> None:
        self.segments: list[str] = []  # only while the caller passes no digests
        self.digests: list[bytes] = []  # digest(segment)
        self.keys: list[bytes] = []  # path key through each segment (the trie's key)
        self.nodes: list[_Node] = []  # trie node through each segment
        self.ids: list[int] = []  # full-block ids through the last node


_ROOT_CHAIN = bytes(16)


def _common(a: list[Any], b: list[Any]) -> int:
    """Length of the common prefix of `a` and `b` (element identity, then equality)."""
    k = len(b)
    if k <= len(a) and a[:k] == b:  # the usual case, at C speed: `a` extends `b`
        return k
    n, m = 0, min(len(a), k)
    while n < m and (a[n] is b[n] or a[n] == b[n]):
        n += 1
    return n


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
        conversations: int = 1024,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block size must be ≥ 1, got {block_size}")
        self.keys = keys
        self.block_size = block_size
        self._mac = hashlib.blake2b(key=keys.key, digest_size=DIGEST)  # == keys.mac, pre-keyed
        self.cache = TokenCache(tokenizer_name, max_tokens=cache_tokens, compact=True)
        self._root = _Node(None, 0, _ROOT_CHAIN, array("I"), [])
        self._nodes: OrderedDict[bytes, _Node] = OrderedDict()
        self._max_nodes = max_nodes
        self._convs: OrderedDict[Hashable, _Conversation] = OrderedDict()
        self._max_convs = max(1, conversations)
        self.new_tokens = 0  # tokens hashed because no earlier request had that prefix

    # -- prompts --------------------------------------------------------------------------

    def request(self, api: str, body: Mapping[str, Any]) -> Prompt:
        """Token count and block ids of an API request body."""
        return self.prompt(linearize.segments(api, body))

    def prompt(
        self,
        segments: list[str],
        digests: list[bytes] | None = None,
        *,
        conversation: Hashable = None,
    ) -> Prompt:
        """Token count and block ids of a request given as linearized segments.

        `digests` may pass `tokencache.digest(s)` of each segment when the caller has them
        (capture does). `conversation` names the conversation the request belongs to (any
        hashable; None is one shared default): the anonymizer remembers the last request of
        each of the `conversations` most recent ones, and a request that repeats one of them
        with segments appended costs O(new segments), however long the context. Neither
        changes the result, only the work: ids depend on the tokens alone.
        """
        if digests is not None and len(digests) != len(segments):
            raise ValueError(f"{len(digests)} digests for {len(segments)} segments")
        convs = self._convs
        conv = convs.get(conversation)
        if conv is None:
            conv = convs[conversation] = _Conversation()
            while len(convs) > self._max_convs:
                convs.popitem(last=False)
        else:
            convs.move_to_end(conversation)
        # The leading segments shared with the conversation's last request (the same objects
        # when capture or an importer renders each message once) reuse its path keys and trie
        # nodes; only the rest is digested and looked up.
        if digests is not None:  # the digests say it all: no need to hold the text
            n = _common(digests, conv.digests)
            conv.segments.clear()
        else:  # (after a call with digests this finds nothing in common: correct, not fast)
            n = _common(segments, conv.segments)
        ckeys, cnodes, cids = conv.keys, conv.nodes, conv.ids
        if n < len(ckeys):
            del conv.segments[n:], conv.digests[n:], ckeys[n:], cnodes[n:]
            del cids[(cnodes[-1].ntok if n else 0) // self.block_size :]
        total = len(segments)
        if n < total:
            new = segments[n:]
            digs = digests[n:] if digests is not None else [digest(s) for s in new]
            if digests is None:
                conv.segments += new
            conv.digests += digs
            key = ckeys[-1] if n else b""
            blake2b = hashlib.blake2b
            for sd in digs:
                key = blake2b(key + sd, digest_size=16).digest()
                ckeys.append(key)
            # The deepest prefix some earlier request (of any conversation) already has.
            nodes = self._nodes
            depth = n
            for i in range(total - 1, n - 1, -1):
                found = nodes.get(ckeys[i])
                if found is not None:
                    nodes.move_to_end(ckeys[i])
                    depth = i + 1
                    walk: list[_Node] = []
                    at = found
                    for _ in range(depth - n):  # up to the part this conversation has
                        walk.append(at)
                        at = cast(_Node, at.parent)
                    walk.reverse()
                    cnodes += walk
                    for w in walk:
                        cids += w.ids
                    break
            node = cnodes[-1] if depth else self._root
            for i in range(depth, total):
                node = self._extend(node, segments[i], conv.digests[i])
                nodes[ckeys[i]] = node
                cnodes.append(node)
                cids += node.ids
            while len(nodes) > self._max_nodes:
                nodes.popitem(last=False)
        elif n:
            node = cnodes[-1]
            self._nodes[ckeys[-1]] = node  # keep the tip in the trie (back if it was evicted)
            self._nodes.move_to_end(ckeys[-1])
        else:
            node = self._root
        blocks = list(cids)
        if node.tail:
            if node.tail_id < 0:
                node.tail_id = self.keys.id(self.keys.mac(node.chain + node.tail.tobytes()))
            blocks.append(node.tail_id)
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
            # `Keys.mac` per block, from a copy of the keyed state (no key setup, no call)
            keyed = self._mac.copy
            chains: list[bytes] = []
            for j in range(0, full * pending.itemsize, size):
                h = keyed()
                h.update(chain + raw[j : j + size])
                chain = h.digest()
                chains.append(chain)
            ids = self.keys.ids(chains)
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
