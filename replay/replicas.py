"""Several replicas of one server without a router: an `Endpoint` that pins each agent to one
replica (agent i -> replica i mod N), so an agent's growing conversation keeps hitting the
prefix cache of the replica that holds it."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from replay.endpoint import Request, Result
from replay.prompts import Form

if TYPE_CHECKING:
    from replay.client import Client


class Replicas:
    """Spreads requests over `clients` (all speaking the same API), sticky per agent; a
    request without an agent goes by a stable hash of its affinity key."""

    def __init__(self, clients: Sequence[Client]) -> None:
        if not clients:
            raise ValueError("Replicas needs at least one client")
        self.clients = list(clients)

    @property
    def form(self) -> Form:
        return self.clients[0].form

    def pick(self, request: Request) -> Client:
        n = len(self.clients)
        if request.agent >= 0:
            return self.clients[request.agent % n]
        return self.clients[zlib.crc32(request.affinity.encode()) % n]

    async def open(self) -> None:
        for c in self.clients:
            await c.open()

    async def send(self, request: Request) -> Result:
        return await self.pick(request).send(request)

    async def close(self) -> None:
        for c in self.clients:
            await c.close()
