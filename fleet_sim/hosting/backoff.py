"""Restart delays of a killed instance (docs/model.md §4): Kubernetes
CrashLoopBackOff, systemd RestartSec and its start rate limit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleet_sim.hosting import defaults
from fleet_sim.numerics.fairshare import INF


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``base_s`` doubling per consecutive restart up to ``max_s``;
    the count resets after running ``reset_s`` without a kill (Kubernetes
    CrashLoopBackOff; systemd RestartSec when ``base_s == max_s``). With
    ``limit_burst``: more than that many kills within ``limit_interval_s`` and it
    gives up (systemd's start rate limit)."""

    base_s: float
    max_s: float
    reset_s: float = INF
    limit_burst: int = 0
    limit_interval_s: float = 0.0

    def delay_s(self, consecutive: int) -> float:
        """Delay before restart number ``consecutive + 1`` in a row (s)."""
        return min(self.max_s, self.base_s * 2.0 ** min(consecutive, 60))

    def gives_up(self, kill_times: Sequence[float], now: float) -> bool:
        """Whether the kills at ``kill_times`` (s, the latest at ``now``) hit the limit."""
        if not self.limit_burst:
            return False
        recent = sum(1 for t in kill_times if t > now - self.limit_interval_s)
        return recent > self.limit_burst


def service_restart(delay_s: float) -> Backoff:
    """systemd's restart of a killed service: RestartSec ``delay_s`` (s), not growing,
    with systemd's start rate limit."""
    return Backoff(delay_s, delay_s, limit_burst=defaults.SERVICE_START_LIMIT_BURST,
                   limit_interval_s=defaults.SERVICE_START_LIMIT_INTERVAL_S)
