"""The anonymizer: equal prefixes share ids, keys separate corpora, work is O(new tokens)."""

from __future__ import annotations

import math
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import KNOWN_TOOLS, Anonymizer, Keys, Prompt, TokenCache, digest, tokenizer
from corpus.normalize import normalize
from corpus.wire import linearize

TOOLS = [
    {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}},
]
SYSTEM = "You are a careful assistant for a law firm. " * 40


def chat(*turns: str) -> dict:
    messages = [{"role": "system", "content": SYSTEM}]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return {"model": "m", "tools": TOOLS, "messages": messages}


def tokens_of(api: str, body: dict) -> list[int]:
    out: list[int] = []
    for seg in linearize.segments(api, body):
        out += tokenizer.encode(seg)
    return out


def test_equal_prefixes_get_equal_ids_across_sessions() -> None:
    anon = Anonymizer(Keys.ephemeral(), block_size=16)
    a = anon.request("openai-chat", chat("Please review clause 4 of the lease."))
    b = anon.request("openai-chat", chat("Summarise the deposition of the second witness."))
    shared = tokens_of("openai-chat", {"tools": TOOLS, "messages": chat()["messages"]})
    full = len(shared) // 16  # whole blocks of the common tools + system prefix
    assert full >= 10
    assert a.blocks[:full] == b.blocks[:full]
    assert a.blocks[full:] != b.blocks[full:]
    assert set(a.blocks[full + 1 :]).isdisjoint(b.blocks[full + 1 :])


def test_next_turn_extends_the_previous_ids() -> None:
    anon = Anonymizer(Keys.ephemeral(), block_size=32)
    first = anon.request("openai-chat", chat("What is our exposure?"))
    second = anon.request("openai-chat", chat("What is our exposure?", "About 2M.", "Why?"))
    whole = first.tokens // 32
    assert second.blocks[:whole] == first.blocks[:whole]
    assert second.tokens > first.tokens


def test_a_different_key_gives_different_digests() -> None:
    k1, k2 = Keys.ephemeral(), Keys.ephemeral()
    a1, a2 = Anonymizer(k1, block_size=16), Anonymizer(k2, block_size=16)
    body = chat("Draft a non-disclosure agreement.")
    p1, p2 = a1.request("openai-chat", body), a2.request("openai-chat", body)
    assert p1.blocks == p2.blocks  # ids are first-seen ranks in both
    assert set(k1.digests()).isdisjoint(k2.digests())  # but nothing links the two corpora
    assert k1.tag("secret-tool") != k2.tag("secret-tool")


def test_same_key_gives_the_same_digests() -> None:
    k1 = Keys.ephemeral()
    k2 = Keys(k1.key, None, [], None)
    body = chat("Draft a non-disclosure agreement.")
    Anonymizer(k1, block_size=16).request("openai-chat", body)
    Anonymizer(k2, block_size=16).request("openai-chat", body)
    assert k1.digests() == k2.digests()


def test_partial_last_block_has_its_own_id() -> None:
    anon = Anonymizer(Keys.ephemeral(), block_size=64)
    short = anon.request("openai-chat", chat("x"))
    assert short.tokens % 64, "the test needs a partial last block"
    longer = anon.request("openai-chat", chat("x", "y"))
    whole = short.tokens // 64
    assert longer.blocks[:whole] == short.blocks[:whole]
    assert longer.blocks[whole] != short.blocks[whole]  # same start, different tail: new id


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(st.text(max_size=300), min_size=0, max_size=5),
    block_size=st.integers(1, 80),
)
def test_blocks_cover_exactly_the_input_tokens(texts: list[str], block_size: int) -> None:
    anon = Anonymizer(Keys.ephemeral(), block_size=block_size)
    body = {"messages": [{"role": "user", "content": t} for t in texts]}
    prompt = anon.request("openai-chat", body)
    assert prompt.tokens == len(tokens_of("openai-chat", body))
    assert len(prompt.blocks) == math.ceil(prompt.tokens / block_size)


def test_cost_is_new_tokens_only() -> None:
    anon = Anonymizer(Keys.ephemeral(), block_size=64)
    turns = ["Open the contract."]
    anon.request("openai-chat", chat(*turns))
    for i in range(6):
        reply = f"Step {i}: the indemnity clause caps liability at {i} million. " * 5
        turns += [reply, f"And clause {i + 5}?"]
        before = anon.new_tokens
        anon.request("openai-chat", chat(*turns))
        new = sum(
            len(tokenizer.encode(seg))
            for seg in linearize.segments(
                "openai-chat",
                {
                    "messages": [
                        {"role": "assistant", "content": turns[-2]},
                        {"role": "user", "content": turns[-1]},
                    ]
                },
            )
        )
        assert anon.new_tokens - before == new


def test_billing_nonce_does_not_break_the_prefix() -> None:
    def request(nonce: str, version: str) -> dict:
        header = f"x-anthropic-billing-header: cc_version={version}; cch={nonce};"
        return {
            "system": [{"type": "text", "text": header}, {"type": "text", "text": SYSTEM}],
            "messages": [{"role": "user", "content": "hello"}],
        }

    anon = Anonymizer(Keys.ephemeral(), block_size=8)
    a = anon.request("anthropic-messages", request("a1b2c", "2.0.14.abc"))
    b = anon.request("anthropic-messages", request("ZZ99-_", "2.0.15.def"))
    assert a == b
    assert "cch=0" in normalize("x-anthropic-billing-header: cch=deadbeef;")
    assert normalize("no header here cch=123") == "no header here cch=123"


def test_tool_names_are_kept_only_when_well_known() -> None:
    anon = Anonymizer(Keys.ephemeral())
    assert anon.tool("Bash") == "Bash"
    assert "Bash" in KNOWN_TOOLS
    private = anon.tool("lookup_client_ledger")
    assert private.startswith("tool-")
    assert "ledger" not in private
    assert anon.tool("lookup_client_ledger") == private  # stable within the corpus


def test_ids_are_the_keyed_chain_over_token_blocks() -> None:
    keys = Keys.ephemeral()
    anon = Anonymizer(keys, block_size=16)
    body = chat("Draft a non-disclosure agreement.", "Done.", "Now a lease.")
    prompt = anon.request("openai-chat", body)
    toks = array("I", tokens_of("openai-chat", body)).tobytes()
    size, chain, expected = 16 * 4, bytes(16), []
    for j in range(0, len(toks) - len(toks) % size, size):
        chain = keys.mac(chain + toks[j : j + size])
        expected.append(chain)
    if len(toks) % size:
        expected.append(keys.mac(chain + toks[len(toks) - len(toks) % size :]))
    assert keys.digests() == expected
    assert prompt.blocks == list(range(len(expected)))


def test_bulk_ids_match_one_by_one_assignment() -> None:
    """`Keys.ids` (one call per segment's blocks) assigns exactly as `Keys.id` would, repeats
    and ids known from earlier included, and queues each new digest once for the sidecar."""
    bulk, single = Keys.ephemeral(base=7), Keys.ephemeral(base=7)
    batches = [[b"a", b"b", b"a"], [], [b"c", b"b"], [b"a"]]
    for batch in batches:
        assert bulk.ids(batch) == [single.id(d) for d in batch]
    assert bulk.digests() == single.digests() == [b"a", b"b", b"c"]
    assert bulk.ids([b"a", b"b", b"c"]) == [7, 8, 9]


def test_token_cache_encodes_special_tokens_and_surrogates_as_text() -> None:
    cache = TokenCache(compact=True)
    for text in ["a <|endoftext|> b <|fim_prefix|>", "lone \ud800 surrogate", "", "é" * 500]:
        assert cache.array(text).tolist() == tokenizer.encode(text)
        assert cache.tokens(text) == tokenizer.encode(text)


def _interleaved() -> list[tuple[str, list[str]]]:
    """Three conversations sharing tools and system prompt, interleaved turn by turn, with a
    retried request, a history edit, a truncation and a conversation that restarts."""
    tools = linearize.segments("openai-chat", {"tools": TOOLS})
    system = f"<|system|>{SYSTEM}"
    convs: dict[str, list[str]] = {c: [*tools, system] for c in "abc"}
    out: list[tuple[str, list[str]]] = []
    for turn in range(6):
        for c in "abc":
            convs[c] = [
                *convs[c],
                f"<|user|>{c} asks question {turn}: " + "what about clause 7? " * (turn + 1),
                f"<|assistant|>{c} answers {turn}. " * (3 * turn + 1),
            ]
            out.append((c, list(convs[c])))
        out.append(("a", list(convs["a"])))  # a retry: the same request again
    convs["b"][len(tools) + 2] = "<|user|>an edited early message"
    out.append(("b", list(convs["b"])))
    out.append(("c", convs["c"][: len(tools) + 3]))  # compacted back to its start
    out.append(("a", [*tools, system, "<|user|>a new task"]))  # same key, new conversation
    out.append(("c", list(convs["c"])))
    return out


def test_interleaved_conversations_and_digests_give_the_plain_ids() -> None:
    requests = _interleaved()
    reference_keys = Keys.ephemeral()
    reference = [  # no memo at all: a fresh anonymizer per request, the same id table
        Anonymizer(reference_keys, block_size=16).prompt(segs) for _, segs in requests
    ]

    def run(**options: int) -> tuple[list[Prompt], list[Prompt], list[Prompt]]:
        results: tuple[list[Prompt], list[Prompt], list[Prompt]] = ([], [], [])
        keys = Keys(reference_keys.key, None, [], None)
        plain, by_conv, by_digest = (Anonymizer(keys, block_size=16, **options) for _ in "123")
        for conv, segs in requests:
            results[0].append(plain.prompt(segs))
            results[1].append(by_conv.prompt(segs, conversation=conv))
            results[2].append(by_digest.prompt(segs, [digest(s) for s in segs], conversation=conv))
        return results

    for options in ({}, {"max_nodes": 3, "conversations": 2}, {"max_nodes": 1}):
        for results in run(**options):
            assert results == reference, options


def test_a_conversations_next_turn_digests_only_its_new_segments(monkeypatch) -> None:
    import corpus.anonymizer as module

    calls: list[str] = []
    monkeypatch.setattr(module, "digest", lambda text: calls.append(text) or digest(text))
    anon = Anonymizer(Keys.ephemeral(), block_size=16)
    seen: dict[str, int] = {}
    for conv, segs in _interleaved()[:12]:  # plain growth, interleaved
        calls.clear()
        anon.prompt(segs, conversation=conv)
        assert len(calls) == len(segs) - seen.get(conv, 0)
        seen[conv] = len(segs)
    calls.clear()
    for conv, segs in _interleaved():
        anon.prompt(segs, [digest(s) for s in segs], conversation=conv)
    assert calls == []  # given digests, the text is never hashed again


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.integers(-3, 3), st.integers(0, 4)), max_size=25
    ),
    max_nodes=st.sampled_from([1, 4, 200_000]),
    conversations=st.sampled_from([1, 2, 1024]),
)
def test_any_interleaving_gives_the_reference_ids(
    steps: list[tuple[int, int, int]], max_nodes: int, conversations: int
) -> None:
    pool = [f"<|user|>message {i} " + "lorem ipsum " * i for i in range(5)]
    keys = Keys.ephemeral()
    anon = Anonymizer(keys, block_size=4, max_nodes=max_nodes, conversations=conversations)
    reference_keys = Keys(keys.key, None, [], None)
    convs: list[list[str]] = [[], [], []]
    for conv, change, pick in steps:
        segs = convs[conv]
        if change < 0:
            del segs[max(0, len(segs) + change) :]
        else:
            segs += [pool[(pick + i) % len(pool)] for i in range(change)]
        got = anon.prompt(list(segs), [digest(s) for s in segs], conversation=conv)
        want = Anonymizer(reference_keys, block_size=4).prompt(list(segs))
        assert got == want
