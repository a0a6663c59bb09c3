"""Session assembly: which conversation each model call belongs to (pure; the caller passes
clock times).

A *thread* is one conversation: a message list that grows call by call. It becomes one corpus
session. Rules, in order:

1. `previous_response_id` naming a response we saw → that response's thread.
2. Explicit session id (see `capture.identity`): calls are grouped per session, then per
   *lane* (the main agent, or one sub-agent id). Within a lane a call joins the thread whose
   last request its message list extends (by segment digests; an equal list is a retry). In
   the main lane, a call that extends nothing but has the same tools and system prompt as the
   lane's main thread continues it (compaction or a rewritten history). Otherwise it starts a
   new thread whose parent is: for a sub-agent lane, the thread of its parent lane (or of
   the main lane) that most recently handed out tool calls (the one waiting on the Agent/Task
   call), else that lane's main thread; for a call in the main lane, the lane's most recent
   thread that has handed out tool calls (Claude Code sub-agents without an agent-id header
   keep the session header but start a fresh message list while the main agent waits on its
   Task/Agent call); for a session with an explicit parent session, the same choice among
   that session's main-lane threads.
3. No explicit id: the call joins the open thread (same API) whose last request its message
   list extends; an equal list joins only when that thread's last call failed (a retry), as
   two agents may well start with the same first message. Ties go to the thread whose last
   tool calls the request answers, then to same tools/system, then to the most recent.

`wait` is the gap from the end of the thread's previous response (last byte) to this request;
`after` is "tool" when that response ended in tool calls or this request ends in a tool
result, "user" otherwise, "start" for a thread's first call. Threads close after `idle`
seconds without a call.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from capture.identity import Identity
from corpus import After

MAIN = b"main"


@dataclass(slots=True)
class Call:
    """What session assembly needs of one request."""

    api: str
    identity: Identity
    preamble: bytes  # digest of the tools/system segments
    messages: list[bytes]  # one digest per conversation item
    ends_in_tool_result: bool
    t: float  # clock time the request was sent
    referenced: Callable[[int], set[str]] = lambda start: set()  # ids in messages[start:]


@dataclass(slots=True)
class Outcome:
    """What session assembly needs of the response."""

    t_end: float  # clock time of the last byte
    failed: bool = False
    tool_ids: frozenset[str] = frozenset()
    response_id: bytes | None = None


@dataclass(eq=False, slots=True)
class Thread:
    """One conversation; `session` is the corpus session id the recorder gave it."""

    id: int
    api: str
    parent: Thread | None = None
    lane: Lane | None = None
    session: int | None = None
    messages: list[bytes] = field(default_factory=list)
    preamble: bytes = b""
    last_end: float | None = None
    last_failed: bool = False
    last_tools: frozenset[str] = frozenset()
    turns: int = 0
    spawner: bool = False  # has ended a call in tool calls: may be a sub-agent's parent
    active: float = 0.0
    responses: list[bytes] = field(default_factory=list)
    state: Any = None  # the recorder's per-thread data (e.g. the last parsed body)
    closed: bool = False


@dataclass(eq=False, slots=True)
class Lane:
    """The threads of one agent (main or a sub-agent id) within an explicit session."""

    group: Group
    key: bytes
    threads: list[Thread] = field(default_factory=list)

    def main(self) -> Thread | None:
        """The lane's main conversation: the one with the most calls (earliest on ties)."""
        return max(self.threads, key=lambda th: th.turns, default=None)

    def spawner(self) -> Thread | None:
        """The most recently active thread that has handed out tool calls."""
        found = [th for th in self.threads if th.spawner]
        return max(found, key=lambda th: th.active, default=None)


@dataclass(eq=False, slots=True)
class Group:
    """All threads of one explicit session id."""

    key: bytes
    lanes: dict[bytes, Lane] = field(default_factory=dict)

    def lane(self, key: bytes) -> Lane:
        found = self.lanes.get(key)
        if found is None:
            found = self.lanes[key] = Lane(self, key)
        return found


@dataclass(frozen=True, slots=True)
class Assignment:
    thread: Thread
    new: bool
    wait: float
    after: After


def _extends(th: Thread, messages: list[bytes]) -> int:
    """len(th.messages) when `messages` starts with them, else -1."""
    n = len(th.messages)
    if n == 0 or n > len(messages) or messages[n - 1] != th.messages[-1]:
        return -1
    return n if messages[:n] == th.messages else -1


def _spawner_or_main(lane: Lane | None) -> Thread | None:
    """The thread of `lane` that spawned a sub-agent: the one that most recently handed out
    tool calls (it is waiting on the Agent/Task call), else the lane's main thread. Not
    `main()` alone: Claude Code's side call (no tools) opens the main lane, and when the
    sub-agent starts the real conversation has made just as many calls (one)."""
    if lane is None:
        return None
    return lane.spawner() or lane.main()


class Sessions:
    """Open threads and the rules above. Not thread-safe: one caller (the recorder's worker)."""

    def __init__(self, idle: float = 900.0) -> None:
        self.idle = idle
        self._ids = itertools.count()
        self._groups: dict[bytes, Group] = {}
        self._pools: dict[str, list[Thread]] = {}  # api -> threads without explicit ids
        self._responses: dict[bytes, Thread] = {}
        self._open: dict[int, Thread] = {}

    def __len__(self) -> int:
        return len(self._open)

    def chained(self, identity: Identity) -> Thread | None:
        """The open thread whose response `identity.previous_response` names, if any."""
        if identity.previous_response is None:
            return None
        th = self._responses.get(identity.previous_response)
        return th if th is not None and not th.closed else None

    def related(self, identity: Identity, api: str) -> list[Thread]:
        """Open threads most likely to hold this call's previous request, best first (for the
        recorder's incremental body parsing; session rules don't depend on it)."""
        out: list[Thread] = []
        if identity.previous_response is not None:
            th = self._responses.get(identity.previous_response)
            if th is not None:
                out.append(th)
        if identity.session is not None and identity.session in self._groups:
            group = self._groups[identity.session]
            lane = group.lanes.get(identity.agent or MAIN)
            if lane is not None:
                out.extend(sorted(lane.threads, key=lambda th: -th.active))
            for other in group.lanes.values():
                if other is not lane:
                    out.extend(other.threads)
        out.extend(sorted(self._pools.get(api, ()), key=lambda th: -th.active))
        return out

    # -- assignment ----------------------------------------------------------------------

    def assign(self, call: Call) -> Assignment:
        """The thread `call` belongs to (created when new), with its wait and after."""
        ident = call.identity
        th = self.chained(ident)
        if th is not None:
            return self._join(th, call)
        if ident.session is not None:
            return self._assign_explicit(call)
        pool = self._pools.setdefault(call.api, [])
        best = self._best(pool, call, retry_only_after_failure=True)
        if best is not None:
            return self._join(best, call)
        return self._new(call, None, None, pool)

    def _assign_explicit(self, call: Call) -> Assignment:
        ident = call.identity
        assert ident.session is not None
        group = self._groups.get(ident.session)
        if group is None:
            group = self._groups[ident.session] = Group(ident.session)
        lane = group.lane(ident.agent or MAIN)
        best = self._best(lane.threads, call, retry_only_after_failure=False)
        if best is not None:
            return self._join(best, call)
        main = lane.main()
        if lane.key == MAIN and main is not None and main.preamble == call.preamble:
            return self._join(main, call)
        parent: Thread | None
        if lane.key != MAIN:
            parent_lane = group.lanes.get(ident.parent_agent or MAIN)
            if parent_lane is None or parent_lane is lane:
                parent_lane = group.lanes.get(MAIN)
            parent = _spawner_or_main(parent_lane)
        else:
            parent = lane.spawner()
            if parent is None and ident.parent_session is not None:
                other = self._groups.get(ident.parent_session)
                parent = _spawner_or_main(other.lanes.get(MAIN) if other is not None else None)
        return self._new(call, parent, lane, lane.threads)

    def _best(
        self, threads: list[Thread], call: Call, *, retry_only_after_failure: bool
    ) -> Thread | None:
        best: Thread | None = None
        best_score: tuple[int, bool, bool, float] | None = None
        for th in threads:
            if th.api != call.api:
                continue
            n = _extends(th, call.messages)
            if n < 0:
                continue
            if n == len(call.messages) and retry_only_after_failure and not th.last_failed:
                continue
            answers = bool(th.last_tools) and not th.last_tools.isdisjoint(call.referenced(n))
            score = (n, answers, th.preamble == call.preamble, th.active)
            if best_score is None or score > best_score:
                best, best_score = th, score
        return best

    def _new(
        self, call: Call, parent: Thread | None, lane: Lane | None, home: list[Thread]
    ) -> Assignment:
        th = Thread(id=next(self._ids), api=call.api, parent=parent, lane=lane, active=call.t)
        home.append(th)
        self._open[th.id] = th
        return Assignment(th, True, 0.0, "start")

    def _join(self, th: Thread, call: Call) -> Assignment:
        wait = max(0.0, call.t - th.last_end) if th.last_end is not None else 0.0
        ended_in_tools = bool(th.last_tools) and not th.last_failed
        after: After = "tool" if ended_in_tools or call.ends_in_tool_result else "user"
        return Assignment(th, False, wait, after)

    # -- bookkeeping ---------------------------------------------------------------------

    def finish(self, assignment: Assignment, call: Call, outcome: Outcome) -> None:
        """Record that the call assigned to `assignment.thread` ended with `outcome`."""
        th = assignment.thread
        th.messages = call.messages
        th.preamble = call.preamble
        th.last_end = outcome.t_end
        th.last_failed = outcome.failed
        th.last_tools = outcome.tool_ids
        th.turns += 1
        if outcome.tool_ids and not outcome.failed:
            th.spawner = True
        th.active = max(th.active, outcome.t_end, call.t)
        if outcome.response_id is not None:
            self._responses[outcome.response_id] = th
            th.responses.append(outcome.response_id)

    def expire(self, now: float) -> list[Thread]:
        """Close and return the threads idle for more than `idle` seconds at `now`."""
        stale = [th for th in self._open.values() if now - th.active > self.idle]
        for th in stale:
            self._close(th)
        return stale

    def close_all(self) -> list[Thread]:
        """Close and return every open thread (shutdown)."""
        out = list(self._open.values())
        for th in out:
            self._close(th)
        return out

    def _close(self, th: Thread) -> None:
        th.closed = True
        th.state = None
        self._open.pop(th.id, None)
        for rid in th.responses:
            if self._responses.get(rid) is th:
                del self._responses[rid]
        if th.lane is not None:
            th.lane.threads.remove(th)
            group = th.lane.group
            if not th.lane.threads:
                del group.lanes[th.lane.key]
            if not group.lanes:
                self._groups.pop(group.key, None)
        else:
            pool = self._pools.get(th.api)
            if pool is not None and th in pool:
                pool.remove(th)
