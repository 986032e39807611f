"""Descriptions of what a fleet runs (docs/model.md §2, §3): plain frozen dataclasses
(config ≠ simulation).

:class:`HostSpec`: a server to build; :class:`AppSpec`: an app (threads, CPU
request, RAM, dependency versions, limits, workloads); :class:`JobsSpec` and
:class:`DemandSpec`: its workloads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fleet_sim.hosting import defaults
from fleet_sim.model.demand import Constant, Diurnal, Replay, Spiky
from fleet_sim.model.distributions import Distribution
from fleet_sim.numerics.fairshare import INF


@dataclass(frozen=True)
class HostSpec:
    """A server to build: ``cores``, ``ram_mib``, per-core ``speed``."""

    name: str
    cores: float
    ram_mib: float = 65_536.0
    speed: float = 1.0


@dataclass(frozen=True)
class JobsSpec:
    """A workload of Poisson job arrivals: ``rate_per_s``, each job ``work`` core-s
    (a distribution) on at most ``max_cores``, arriving in ``[t_start_s, t_end_s)``.
    ``service``: the service whose one stream feeds it (its load balancer routes
    the arrivals, see :mod:`fleet_sim.model.service`); "" for the replica's own."""

    name: str
    rate_per_s: float
    work: Distribution
    max_cores: float = 1.0
    t_start_s: float = 0.0
    t_end_s: float = INF
    service: str = ""

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0 or not self.max_cores > 0:
            raise ValueError(f"workload {self.name!r}: rate_per_s and max_cores must be > 0")


#: demand profile kinds a DemandSpec may name
PROFILES: Mapping[str, Callable[..., Any]] = {
    "constant": Constant, "spiky": Spiky, "diurnal": Diurnal, "replay": Replay}


@dataclass(frozen=True)
class DemandSpec:
    """A demand workload: a profile ``kind`` (constant, spiky, diurnal, replay) and the
    profile's parameters, e.g. ``{"baseline_cores": 0.5, "rate_per_s": 0.01,
    "duration_s": Exponential(30), "height_cores": 16}`` (a spiky profile draws from
    the ``spikes`` stream)."""

    name: str
    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def __init__(self, name: str, kind: str, params: Mapping[str, Any] | None = None):
        if kind not in PROFILES:
            raise ValueError(f"workload {name!r}: unknown demand profile {kind!r}; "
                             f"valid: {', '.join(PROFILES)}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "params", tuple(sorted(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in (params or {}).items())))

    def profile(self, rng: np.random.Generator):
        """The profile object; a spiky one draws from ``rng``."""
        kwargs = dict(self.params)
        if self.kind == "spiky":
            kwargs["rng"] = rng
        return PROFILES[self.kind](**kwargs)


WorkloadSpec = JobsSpec | DemandSpec


@dataclass(frozen=True)
class AppSpec:
    """An application, whatever hosts it.

    ``threads``: its processes' threads (the most cores it can use at once, and
    its CFS weight bound). ``cpu_request_cores``: what placement commits for it.
    ``ram_mib``: RAM it uses (and placement reserves); ``ram_growth_mib_s``: a
    leak, MiB/s from each start. ``dependencies``: versions it needs on a shared
    OS, e.g. ``{"postgres": "12"}``. Limits, used where the mode has them:
    ``cpu_limit_cores`` (container ``cpu.max`` = limit × period), ``cpu_weight``
    (container ``cpu.weight``), ``cpuset_cores`` (exclusive cores),
    ``ram_limit_mib`` (container ``memory.max``), ``vcpus`` (VM size; default from
    the request). ``image``: the image reference ``<app>:<version>`` (container image,
    VM image or bare-metal release). ``late_workloads``: its workloads begin when it
    first runs, not at admission (a replacement replica of a rollout: its requests
    went to the other replicas until then).
    """

    name: str
    threads: int = 1
    cpu_request_cores: float = 1.0
    ram_mib: float = 512.0
    dependencies: tuple[tuple[str, str], ...] | Mapping[str, str] = ()
    workloads: tuple[WorkloadSpec, ...] = ()
    ram_growth_mib_s: float = 0.0
    cpu_limit_cores: float | None = None
    cpu_weight: float = defaults.CPU_WEIGHT_DEFAULT
    cpuset_cores: int | None = None
    ram_limit_mib: float | None = None
    vcpus: int | None = None
    image: str = ""
    late_workloads: bool = False

    def __post_init__(self) -> None:
        deps = self.dependencies
        pairs = deps.items() if isinstance(deps, Mapping) else deps
        object.__setattr__(self, "dependencies",
                           tuple(sorted((str(k), str(v)) for k, v in pairs)))
        object.__setattr__(self, "workloads", tuple(self.workloads))
        if not self.image:
            object.__setattr__(self, "image", f"{self.name}:latest")
        if not self.name or "." in self.name:
            raise ValueError(f"app name must be non-empty and without dots, got {self.name!r}")
        if self.threads < 1 or self.cpu_request_cores < 0 or self.ram_mib < 0:
            raise ValueError(f"app {self.name!r}: need threads >= 1, cpu_request_cores >= 0 "
                             f"and ram_mib >= 0")
        names = [w.name for w in self.workloads]
        if len(set(names)) != len(names):
            raise ValueError(f"app {self.name!r}: workload names must be unique, got {names}")

    @property
    def deps(self) -> dict[str, str]:
        """Dependency versions as a dict."""
        return dict(self.dependencies)  # type: ignore[arg-type]
