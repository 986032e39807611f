"""Demand workloads and their profiles (docs/model.md §3).

A ``DemandWorkload`` is a leaf of a host's CPU tree that wants a piecewise-constant
number of cores; CPU it does not get is lost (its unmet core-s is the figure of
merit). A profile is an iterator of ``(t, cores)`` steps starting at t = 0, drawn
lazily by the host's scheduler as a feed, so a day of spikes costs no SimPy events.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from fleet_sim.model.cputree import WORKLOADS, CpuNode
from fleet_sim.model.distributions import Distribution
from fleet_sim.numerics.fairshare import INF

Steps = Iterator[tuple[float, float]]


@dataclass(frozen=True)
class Constant:
    """Always ``cores``."""

    cores: float

    def steps(self) -> Steps:
        yield 0.0, float(self.cores)


@dataclass(frozen=True)
class Spiky:
    """``baseline_cores`` plus spikes of ``height_cores`` arriving as a Poisson process.

    ``rate_per_s`` spikes per second; each lasts a draw of ``duration_s`` (a
    distribution, s). Overlapping spikes add up. Draws come from ``rng``.
    """

    baseline_cores: float
    rate_per_s: float
    duration_s: Distribution
    height_cores: float
    rng: np.random.Generator

    def steps(self) -> Steps:
        level = self.baseline_cores
        yield 0.0, level
        ends: list[float] = []
        t_next = self.rng.exponential(1.0 / self.rate_per_s)
        while True:
            if ends and ends[0] <= t_next:
                t = heapq.heappop(ends)
                level -= self.height_cores
                if not ends:
                    level = self.baseline_cores  # no drift from float sums
                yield t, level
                continue
            dur = float(self.duration_s.sample(self.rng, 1)[0])
            heapq.heappush(ends, t_next + dur)
            level += self.height_cores
            yield t_next, level
            t_next += self.rng.exponential(1.0 / self.rate_per_s)


@dataclass(frozen=True)
class Diurnal:
    """A daily sine: ``mean_cores ± amplitude_cores``, peak at ``peak_s`` into the period,
    held constant over steps of ``step_s`` (piecewise-constant, docs/model.md §3)."""

    mean_cores: float
    amplitude_cores: float
    period_s: float = 86_400.0
    peak_s: float = 14 * 3600.0
    step_s: float = 300.0

    def steps(self) -> Steps:
        k = 0
        while True:
            t = k * self.step_s
            mid = t + self.step_s / 2
            phase = 2 * math.pi * (mid - self.peak_s) / self.period_s
            yield t, max(0.0, self.mean_cores + self.amplitude_cores * math.cos(phase))
            k += 1


@dataclass(frozen=True)
class Replay:
    """A utilization series replayed at a fixed interval: ``cores × series[i]``.

    ``series`` holds fractions (0..1, e.g. a PlanetLab trace / 100) sampled every
    ``interval_s``; the last value holds after the end unless ``loop``.
    """

    series: Sequence[float]
    interval_s: float
    cores: float
    loop: bool = False

    def steps(self) -> Steps:
        values = [float(v) * self.cores for v in self.series]
        if not values:
            yield 0.0, 0.0
            return
        k = 0
        while True:
            yield k * self.interval_s, values[k % len(values)]
            k += 1
            if k >= len(values) and not self.loop:
                return


class DemandWorkload(CpuNode):
    """A leaf of a host's CPU tree wanting ``profile``'s cores over time.

    ``threads`` (optional) bounds the CFS weight on a shared OS: the hosting mode
    may set ``weight_of`` to derive the weight from the demand.
    """

    __slots__ = ("_pending", "_steps", "host", "profile", "weight_of")
    is_leaf = True

    def __init__(self, host, name: str, profile, parent: CpuNode | None = None,
                 weight: float = 1.0, cap: float = INF, instance: str = ""):
        super().__init__(name, weight=weight, cap=cap, table=WORKLOADS, instance=instance)
        self.host = host
        self.profile = profile
        self.weight_of = None
        self._steps: Steps | None = None
        host.attach(self, parent)

    def start(self) -> None:
        """Register the profile as a feed of the host's scheduler."""
        self._steps = self.profile.steps()
        first = next(self._steps, None)
        if first is not None:
            self._pending = first
            self.host.cpu.add_feed(self, first[0])
            self.host.woke()

    def fire(self, sched, t: float) -> float | None:
        _, cores = self._pending
        weight = self.weight_of(cores) if self.weight_of is not None else None
        sched.set_demand(self, cores, weight)
        nxt = next(self._steps, None)  # type: ignore[arg-type]
        if nxt is None:
            return None
        self._pending = nxt
        return nxt[0]
