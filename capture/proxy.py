"""mitmproxy run in-process: one reverse listener per upstream, or one forward proxy.

`Proxy.start()` builds a master with only the mitmproxy addons a proxy needs (core, proxy
server, next-layer protocol detection, TLS, and `block`, which keeps a listener on a public
address from becoming an open proxy) plus `Capture`, starts it in the running event loop and
returns the bound addresses (port 0 binds a free port). None of mitmproxy's traffic-modifying
addons is loaded (no Alt-Svc rewriting, no anticache/anticomp, no header or body rules), and in
forward mode only LLM API hosts are TLS-intercepted (`capture.hosts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from typing import Any

from mitmproxy import options

from capture import hosts
from capture.addon import Capture
from capture.errors import CaptureError
from capture.listeners import Listener
from capture.recorder import Recorder

with warnings.catch_warnings():
    # mitmproxy.addons imports every addon, and ldap3 (proxyauth's) uses deprecated pyasn1 names
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.addons import block, core, next_layer, proxyserver, tlsconfig
    from mitmproxy.master import Master

def _quiet_cancellations(previous: Any) -> Any:
    """A loop exception handler that drops the `CancelledError`s of client connections torn
    down at shutdown (asyncio's stream callback re-raises a cancelled handler task's
    cancellation into the loop's handler: a traceback at every Ctrl-C with a call in flight)
    and hands everything else on."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), asyncio.CancelledError):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle


class Proxy:
    """An in-process mitmproxy master recording into `recorder`. One per process (mitmproxy
    keeps its master in a global)."""

    def __init__(
        self,
        recorder: Recorder,
        listeners: list[Listener],
        *,
        confdir: str | os.PathLike[str] | None = None,
        insecure: bool = False,
        intercept: tuple[str, ...] = (),
    ) -> None:
        self.recorder = recorder
        self.listeners = listeners
        self.confdir = confdir
        self.insecure = insecure
        self.intercept = intercept
        prefixes = {li.spec: li.prefix for li in listeners if li.prefix}
        self.addon = Capture(recorder, prefixes=prefixes)
        self.master: Master | None = None
        self._task: asyncio.Task[None] | None = None
        self.addresses: list[tuple[str, int]] = []

    async def start(self) -> list[tuple[str, int]]:
        """Bind the listeners and start proxying; returns the bound (host, port) pairs in the
        order of `listeners`."""
        opts = options.Options()
        master = self.master = Master(opts)
        master.addons.add(
            core.Core(),
            block.Block(),
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            self.addon,
        )
        update: dict[str, object] = {
            "mode": [li.spec for li in self.listeners],
            "ssl_insecure": self.insecure,
        }
        if self.confdir is not None:
            update["confdir"] = os.fspath(self.confdir)
        if any(li.upstream is None for li in self.listeners):
            update["allow_hosts"] = hosts.allow_hosts(self.intercept)
        try:
            opts.update(**update)
        except Exception as exc:
            raise CaptureError(f"invalid proxy settings: {exc}") from exc
        # mitmproxy's own handler is active while the master runs and gives this one back
        # when it exits, before the connections it cancels have finished unwinding
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_cancellations(loop.get_exception_handler()))
        ready = asyncio.Event()
        self.addon.on_running = ready.set
        self._task = asyncio.create_task(master.run(), name="mitmproxy")
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiter.cancel()
            failure = self._task.exception()
            raise CaptureError(f"the proxy did not start: {failure}") from failure
        servers = master.addons.get("proxyserver").servers
        problems = [
            f"{s.mode.full_spec}: {s.last_exception}" for s in servers if not s.is_running
        ]
        if problems:
            await self.stop()
            raise CaptureError("cannot listen: " + "; ".join(problems))
        addrs: list[tuple[str, int]] = []
        for li in self.listeners:
            inst = servers[li.spec]
            tcp = [a for a in inst.listen_addrs if a[1]]
            host, port, *_ = tcp[0] if tcp else (li.host, li.port)
            addrs.append((host, port))
        self.addresses = addrs
        return addrs

    async def stop(self) -> None:
        """Stop proxying (in-flight calls are recorded as aborted); the recorder stays open."""
        if self.master is None or self._task is None:
            return
        # mitmproxy's master leaves its listening sockets open at shutdown (its own tool exits
        # next): close them first, so a stopped proxy frees its ports at once
        await self.master.addons.get("proxyserver").servers.update([])
        self.master.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def wait(self) -> None:
        """Until the master exits (after `stop()` or a fatal error)."""
        if self._task is not None:
            await self._task
