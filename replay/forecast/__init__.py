"""Forecast: the replay loop against modelled engines on a virtual clock (`replay --forecast`).

`Cluster` is an `Endpoint` over engine cores (`replay.engine.scheduler.Engine` in burst mode)
arranged as a `Topology` (replicas behind a router, or disaggregated prefill/decode pools);
`forecast` runs the search on it inside a `replay.virtual` loop. Errors: `replay.errors.ConfigError`
for a bad topology or router; engine refusals become failed requests, as on a live server.
"""

from replay.forecast.cluster import Cluster
from replay.forecast.routers import ROUTERS
from replay.forecast.run import forecast
from replay.forecast.topology import Topology

__all__ = ["ROUTERS", "Cluster", "Topology", "forecast"]
