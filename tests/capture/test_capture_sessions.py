"""Session assembly rules, identity extraction and client families (pure)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from capture import agents, identity
from capture.identity import Identity, tag
from capture.sessions import Call, Outcome, Sessions, Thread

ANONYMOUS = Identity()


def d(*names: str) -> list[bytes]:
    return [tag(n) for n in names]


class Driver:
    """Feeds calls through `Sessions` like the recorder does."""

    def __init__(self) -> None:
        self.s = Sessions(idle=100.0)
        self.t = 0.0

    def call(
        self,
        messages: Iterable[str],
        *,
        ident: Identity = ANONYMOUS,
        preamble: str = "sys",
        tools_out: Iterable[str] = (),
        refs: Iterable[str] = (),
        failed: bool = False,
        gap: float = 1.0,
        tool_result: bool = False,
        api: str = "openai-chat",
        response: str | None = None,
    ) -> tuple[Thread, bool, float, str]:
        self.t += gap
        ref_set = set(refs)
        call = Call(api=api, identity=ident, preamble=tag(preamble), messages=d(*messages),
                    ends_in_tool_result=tool_result, t=self.t,
                    referenced=lambda start: ref_set)
        a = self.s.assign(call)
        self.t += 0.5
        self.s.finish(a, call, Outcome(t_end=self.t, failed=failed,
                                       tool_ids=frozenset(tools_out),
                                       response_id=tag(response) if response else None))
        return a.thread, a.new, a.wait, a.after


def test_a_growing_message_list_is_one_thread_with_waits_and_afters() -> None:
    dr = Driver()
    th, new, wait, after = dr.call(["u1"], tools_out=["c1"])
    assert new
    assert wait == 0.0
    assert after == "start"
    th2, new, wait, after = dr.call(["u1", "a1", "r1"], gap=2.0, tool_result=True)
    assert th2 is th
    assert not new
    assert wait == pytest.approx(2.0)
    assert after == "tool"
    th3, _, _, after = dr.call(["u1", "a1", "r1", "a2", "u2"])
    assert th3 is th
    assert after == "user"


def test_identical_first_requests_are_two_conversations() -> None:
    dr = Driver()
    a, *_ = dr.call(["sys", "hello"], tools_out=["ca"])
    b, new, *_ = dr.call(["sys", "hello"], tools_out=["cb"])
    assert new
    assert b is not a
    # each continuation goes to the thread whose tool call it answers
    b2, *_ = dr.call(["sys", "hello", "a-b", "r-b"], refs=["cb"])
    a2, *_ = dr.call(["sys", "hello", "a-a", "r-a"], refs=["ca"])
    assert (a2, b2) == (a, b)


def test_an_equal_request_after_a_failure_is_a_retry() -> None:
    dr = Driver()
    a, *_ = dr.call(["u1"], failed=True)
    again, new, wait, after = dr.call(["u1"], gap=3.0)
    assert again is a
    assert not new
    assert wait == pytest.approx(3.0)
    assert after == "user"


def test_longest_extension_wins() -> None:
    dr = Driver()
    short, *_ = dr.call(["s", "u"])
    long, *_ = dr.call(["s", "u", "a", "u2"])
    assert long is short
    other, new, *_ = dr.call(["s", "x"])
    assert new
    assert other is not short


def test_explicit_session_groups_and_sub_agents_without_agent_headers() -> None:
    dr = Driver()
    cc = Identity(session=tag("sess-1"))
    quota, *_ = dr.call(["quota"], ident=cc, preamble="none")
    main, new, *_ = dr.call(["task"], ident=cc, preamble="cc-main")
    assert new
    assert main.parent is None
    dr.call(["task", "a", "r"], ident=cc, preamble="cc-main", tools_out=["task-1"])
    sub, new, _, after = dr.call(["explore the repo"], ident=cc, preamble="cc-explore")
    assert new
    assert sub.parent is main
    assert after == "start"
    sub2, *_ = dr.call(["explore the repo", "a", "r"], ident=cc, preamble="cc-explore")
    assert sub2 is sub
    # compaction: the main conversation restarts with a summary but the same tools/system
    compacted, new, *_ = dr.call(["summary"], ident=cc, preamble="cc-main")
    assert compacted is main
    assert not new
    assert quota is not main


def test_claude_code_agent_id_headers_make_sub_agent_lanes() -> None:
    dr = Driver()
    root = Identity(session=tag("s"))
    main, *_ = dr.call(["task"], ident=root, tools_out=["Agent-1"])
    sub_ident = Identity(session=tag("s"), agent=tag("agent-a"))
    sub, new, *_ = dr.call(["sub task"], ident=sub_ident, preamble="sys")
    assert new
    assert sub.parent is main
    nested = Identity(session=tag("s"), agent=tag("agent-b"), parent_agent=tag("agent-a"))
    grand, *_ = dr.call(["nested"], ident=nested)
    assert grand.parent is sub


def test_parent_session_header_links_sessions() -> None:
    dr = Driver()
    main, *_ = dr.call(["m"], ident=Identity(session=tag("p")))
    child, new, *_ = dr.call(["c"], ident=Identity(session=tag("c"), parent_session=tag("p")))
    assert new
    assert child.parent is main


def test_previous_response_id_chains_join_the_thread() -> None:
    dr = Driver()
    first, *_ = dr.call(["u1"], api="openai-responses", response="resp_1")
    nxt, new, *_ = dr.call(["r1"], api="openai-responses",
                           ident=Identity(previous_response=tag("resp_1")))
    assert nxt is first
    assert not new


def test_idle_threads_close_and_free_their_ids() -> None:
    dr = Driver()
    a, *_ = dr.call(["u1"], ident=Identity(session=tag("s")), response="r")
    assert dr.s.expire(dr.t + 50.0) == []
    assert dr.s.expire(dr.t + 101.0) == [a]
    assert a.closed
    assert len(dr.s) == 0
    b, new, *_ = dr.call(["u1", "a", "u2"], ident=Identity(session=tag("s")))
    assert new
    assert b is not a
    assert dr.s.chained(Identity(previous_response=tag("r"))) is None


def test_identity_rules() -> None:
    cc = identity.extract(
        {"x-claude-code-session-id": "S1", "x-claude-code-agent-id": "A1"},
        {"metadata": {"user_id": "user_abc_account_123_session_S2"}},
    )
    assert cc.session == tag("S1")
    assert cc.agent == tag("A1")
    assert cc.source == "claude-code"
    body_only = identity.extract(
        {}, {"metadata": {"user_id": "user_ab12_account_9f_session_0b1c2d3e-aaaa"}})
    assert body_only.session == tag("0b1c2d3e-aaaa")
    json_uid = identity.extract({}, {"metadata": {"user_id": '{"session_id": "X9"}'}})
    assert json_uid.session == tag("X9")
    plain_user = identity.extract({}, {"metadata": {"user_id": "customer-42"}})
    assert plain_user.session is None
    root = identity.extract({"session_id": "T", "thread-id": "T"}, {})
    assert root.session == tag("T")
    assert root.agent is None
    child = identity.extract({"session_id": "T", "thread-id": "U"}, {})
    assert child.session == tag("T")
    assert child.agent is not None
    review = identity.extract({"session-id": "T", "x-openai-subagent": "review"}, {})
    assert review.agent is not None
    oc = identity.extract({"x-session-id": "C", "x-parent-session-id": "P"}, {})
    assert oc.session == tag("C")
    assert oc.parent_session == tag("P")
    chain = identity.extract({}, {"previous_response_id": "resp_9", "prompt_cache_key": "k"})
    assert chain.previous_response == tag("resp_9")
    assert chain.session is None
    for name in ("x-litellm-session-id", "helicone-session-id", "langfuse-session-id",
                 "x-portkey-trace-id"):
        assert identity.extract({name: "g"}, {}).session == tag("g")


@pytest.mark.parametrize(
    ("headers", "family"),
    [
        ({"user-agent": "claude-cli/2.0.14 (external, cli)"}, "claude-code"),
        ({"user-agent": "codex_cli_rs/0.46.0 (Mac OS 15.6.1; arm64) ghostty/1.2"}, "codex"),
        ({"user-agent": "OpenAI/Python 1.109.1"}, "openai-python"),
        ({"user-agent": "Anthropic/Python 0.69.0"}, "anthropic-python"),
        ({"user-agent": "litellm/1.77.3"}, "litellm"),
        ({"user-agent": "OpenAI/Python 1.99", "x-title": "Aider"}, "aider"),
        ({"user-agent": "my-secret-internal-tool/3.1 build=123"}, "other"),
        ({}, ""),
    ],
)
def test_client_family_never_the_header_value(headers: dict[str, str], family: str) -> None:
    assert agents.family(headers) == family
