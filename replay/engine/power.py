"""Energy integration for the simulated GPU: piecewise-constant power over monotonic time."""

from __future__ import annotations


class PowerMeter:
    """Integrates a power level that changes at known instants into an energy counter.

    The engine calls `set(watts, now)` at the start of every step and when it goes idle;
    `energy_j(now)` includes the level in force since the last change, so a scrape between
    steps sees a counter that grows smoothly, like DCGM's.
    """

    def __init__(self, watts: float, now: float) -> None:
        self.watts = watts
        self._since = now
        self._joules = 0.0

    def set(self, watts: float, now: float) -> None:
        """Power level from `now` on (`now` never goes backwards)."""
        if now > self._since:
            self._joules += self.watts * (now - self._since)
            self._since = now
        self.watts = watts

    def energy_j(self, now: float) -> float:
        """Joules drawn from construction until `now`."""
        return self._joules + self.watts * max(0.0, now - self._since)
