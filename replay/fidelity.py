"""Fidelity of a replay: did the server see what the corpus recorded?

Pure functions over the window's samples: input tokens the server counted vs the recorded
input, output received vs asked, the server's cache hits vs what an infinite prefix cache would
hit for the same requests, and schedule lag (turns starting late because the client or the
endpoint fell behind).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from replay.results import Fidelity, Sample


def measure(samples: Sequence[Sample], counters: float | None = None) -> Fidelity:
    """Fidelity of the successful `samples`; `counters` is the server's own window hit ratio
    from its /metrics counters when it has them."""
    ok = [s for s in samples if not s.error and not s.cut]
    fid = Fidelity(cache_counters=counters)
    if not ok:
        return fid
    reported = [s for s in ok if s.server_input >= 0 and s.input > 0]
    if reported:
        server = np.array([s.server_input for s in reported], dtype=np.float64)
        recorded = np.array([s.input for s in reported], dtype=np.float64)
        fid.input_checked = len(reported)
        fid.input_ratio = float(server.sum() / recorded.sum())
        fid.input_max_dev = float(np.max(np.abs(server - recorded) / recorded))
    fid.output_asked = sum(s.asked for s in ok)
    fid.output_received = sum(s.output for s in ok)
    if fid.output_asked:
        fid.output_ratio = fid.output_received / fid.output_asked
    fid.output_exact_share = sum(1 for s in ok if s.output == s.asked) / len(ok)
    cached = [s for s in ok if s.server_cached >= 0 and s.server_input > 0]
    if cached:
        fid.cache_server = sum(s.server_cached for s in cached) / sum(
            s.server_input for s in cached
        )
    total_in = sum(s.input for s in ok)
    if total_in:
        fid.cache_ideal = sum(min(s.ideal_cached, s.input) for s in ok) / total_in
    lag = np.array([s.start - s.planned for s in ok if s.planned >= 0], dtype=np.float64)
    if lag.size:
        lag = np.maximum(lag, 0.0)
        fid.lag_p50 = float(np.percentile(lag, 50))
        fid.lag_p95 = float(np.percentile(lag, 95))
        fid.lag_max = float(lag.max())
    return fid
