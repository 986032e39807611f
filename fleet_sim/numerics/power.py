"""Server power as a function of CPU utilization.

Pure math. Utilization ``util`` is a fraction of the server's CPU capacity in
[0, 1] (busy cores / cores); values outside are clamped, NaN is rejected.
Power is electrical power drawn at the wall, in W.

- :class:`LinearPower`: ``idle_w + (peak_w - idle_w) * util``, the common model
  of Fan et al. (2007) and of CloudSim's ``PowerModelLinear``.
- :class:`TablePower`: 11 measured points at 0 %, 10 %, …, 100 % load, as
  published by SPECpower_ssj2008, linearly interpolated in between (CloudSim's
  ``PowerModelSpecPower``). Real servers are far from linear at low load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TABLE_POINTS = 11
"""Number of points of a SPECpower-style table (0 %, 10 %, …, 100 % load)."""

_UTIL_GRID = np.linspace(0.0, 1.0, TABLE_POINTS)


def _clamp_util(util: float) -> float:
    if math.isnan(util):
        raise ValueError("util must be a number in [0, 1], got nan")
    return min(max(util, 0.0), 1.0)


def _clamp_util_array(util: np.ndarray) -> np.ndarray:
    u = np.asarray(util, dtype=float)
    if np.isnan(u).any():
        raise ValueError("util must be numbers in [0, 1], got nan")
    return np.clip(u, 0.0, 1.0)


def _check_power(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite power >= 0 W, got {value!r}")


@dataclass(frozen=True)
class LinearPower:
    """Power rising linearly from ``idle_w`` at 0 % to ``peak_w`` at 100 % load (W)."""

    idle_w: float
    peak_w: float

    def __post_init__(self) -> None:
        _check_power("idle_w", self.idle_w)
        _check_power("peak_w", self.peak_w)
        if self.peak_w < self.idle_w:
            raise ValueError(
                f"peak_w must be >= idle_w, got peak_w={self.peak_w!r} < idle_w={self.idle_w!r}"
            )

    def power_w(self, util: float) -> float:
        """Power (W) at utilization ``util`` (fraction, clamped to [0, 1])."""
        return self.idle_w + (self.peak_w - self.idle_w) * _clamp_util(float(util))

    def power_w_array(self, util: np.ndarray) -> np.ndarray:
        """Vectorized :meth:`power_w`: same shape as ``util``, in W."""
        return self.idle_w + (self.peak_w - self.idle_w) * _clamp_util_array(util)


@dataclass(frozen=True)
class TablePower:
    """Power (W) measured at 0 %, 10 %, …, 100 % load, interpolated linearly.

    ``points_w`` holds exactly 11 finite values >= 0 W. They need not be
    increasing: the table is taken as measured.
    """

    points_w: tuple[float, ...]

    def __init__(self, points_w: Sequence[float]):
        points = tuple(float(p) for p in points_w)
        if len(points) != TABLE_POINTS:
            raise ValueError(
                f"points_w must hold {TABLE_POINTS} values (0 %, 10 %, …, 100 % load), "
                f"got {len(points)}"
            )
        for k, p in enumerate(points):
            _check_power(f"points_w[{k}] (at {10 * k} % load)", p)
        object.__setattr__(self, "points_w", points)

    @property
    def idle_w(self) -> float:
        """Power at 0 % load (W)."""
        return self.points_w[0]

    @property
    def peak_w(self) -> float:
        """Power at 100 % load (W)."""
        return self.points_w[-1]

    def power_w(self, util: float) -> float:
        """Power (W) at utilization ``util`` (fraction, clamped to [0, 1])."""
        u = _clamp_util(float(util)) * (TABLE_POINTS - 1)
        k = min(int(u), TABLE_POINTS - 2)
        lo, hi = self.points_w[k], self.points_w[k + 1]
        return lo + (hi - lo) * (u - k)

    def power_w_array(self, util: np.ndarray) -> np.ndarray:
        """Vectorized :meth:`power_w`: same shape as ``util``, in W."""
        return np.interp(_clamp_util_array(util), _UTIL_GRID, self.points_w)
