"""Distributions of durations and sizes used by workloads, with their moments.

Each has ``mean`` and ``variance`` (so tests can compare theory with samples) and
``sample(rng, n) -> ndarray``; the caller passes the named stream it draws from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Deterministic:
    """Always ``value``."""

    value: float

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value))


@dataclass(frozen=True)
class Exponential:
    """Exponential with the given mean."""

    mean_value: float

    def __post_init__(self) -> None:
        if not self.mean_value > 0:
            raise ValueError(f"exponential mean must be > 0, got {self.mean_value!r}")

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def variance(self) -> float:
        return self.mean_value**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_value, n)


@dataclass(frozen=True)
class LogNormal:
    """Log-normal given by its mean and coefficient of variation (sd / mean)."""

    mean_value: float
    cv: float

    def __post_init__(self) -> None:
        if not self.mean_value > 0 or not self.cv > 0:
            raise ValueError("lognormal mean and cv must be > 0")

    @property
    def _sigma2(self) -> float:
        return math.log1p(self.cv**2)

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def variance(self) -> float:
        return (self.cv * self.mean_value) ** 2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        mu = math.log(self.mean_value) - self._sigma2 / 2
        return rng.lognormal(mu, math.sqrt(self._sigma2), n)


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError("uniform needs 0 <= low <= high")

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


@dataclass(frozen=True)
class Scaled:
    """``factor`` × a draw of ``base`` (e.g. burst work = height × duration)."""

    base: Deterministic | Exponential | LogNormal | Uniform
    factor: float

    @property
    def mean(self) -> float:
        return self.factor * self.base.mean

    @property
    def variance(self) -> float:
        return self.factor**2 * self.base.variance

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.factor * self.base.sample(rng, n)


Distribution = Deterministic | Exponential | LogNormal | Uniform | Scaled
