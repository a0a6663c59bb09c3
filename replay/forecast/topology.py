"""A modelled serving topology: identical engines behind a router, or disaggregated prefill and
decode pools joined by a KV-transfer link. Each engine may stand for a TP/EP group of GPUs (its
profile's `gpus`)."""

from __future__ import annotations

import msgspec

from replay.errors import ConfigError
from replay.forecast.routers import ROUTERS


class Topology(msgspec.Struct, frozen=True, kw_only=True):
    """`replicas` engines behind `router`; or, when `prefill` and `decode` are set, that many
    prefill and decode engines (each pool behind `router`), the prompt's KV crossing a link of
    `kv_gbps` GB/s between them."""

    replicas: int = 1
    router: str = "round-robin"
    prefill: int = 0
    decode: int = 0
    kv_gbps: float = 50.0

    def __post_init__(self) -> None:
        if self.router not in ROUTERS:
            raise ConfigError(f"router {self.router!r}: expected one of {', '.join(ROUTERS)}")
        if self.replicas < 1:
            raise ConfigError(f"replicas must be at least 1, got {self.replicas}")
        if (self.prefill > 0) != (self.decode > 0) or self.prefill < 0 or self.decode < 0:
            raise ConfigError(
                f"prefill and decode replicas go together (got {self.prefill} and "
                f"{self.decode}): give both, each at least 1, or neither"
            )
        if self.kv_gbps <= 0:
            raise ConfigError(f"KV link bandwidth must be positive, got {self.kv_gbps:g} GB/s")

    @property
    def disaggregated(self) -> bool:
        return self.prefill > 0

    @property
    def engines(self) -> int:
        return self.prefill + self.decode if self.disaggregated else self.replicas

    def describe(self, engine: str, gpus_per_engine: int = 1) -> str:
        """One line, e.g. `256 × h100 behind a prefix router (256 GPUs)`."""
        group = f" ({gpus_per_engine}-GPU groups)" if gpus_per_engine > 1 else ""
        n = self.engines * gpus_per_engine
        gpus = f"{n} GPU{'s' if n != 1 else ''}"
        if self.disaggregated:
            return (
                f"{self.prefill} prefill + {self.decode} decode × {engine}{group}, "
                f"{self.router} routing, KV over {self.kv_gbps:g} GB/s ({gpus})"
            )
        return f"{self.replicas} × {engine}{group} behind a {self.router} router ({gpus})"
