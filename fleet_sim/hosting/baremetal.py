"""Bare metal: apps installed as processes on one shared OS (docs/model.md §2, §4, §5).

- **CPU**: no cgroups. Linux CFS is fair per runnable thread, so each app's
  workloads are processes directly below the host's root whose weight is their
  runnable threads (⌈demand⌉, at most the app's threads; see
  :func:`fleet_sim.hosting.processes.cfs_weight`). A neighbour with 16 busy threads
  takes 16 times the share of a single-threaded app.
- **Dependencies**: apps on one OS share its packages. Two apps that need different
  versions of one dependency cannot share it. ``conflict_policy="refuse"``:
  placement and admission refuse (ConflictError). ``"fail-install"``: the app is
  placed anyway and its install fails when it finds the other version installed
  (event ``install_failed``); it never runs.
- **Install** (docs/model.md §5): each attempt takes a draw of ``install_s`` (scripted
  by default); each of its steps (one per dependency, plus the app) fails with
  ``install_step_failure_p``; a failed attempt is retried up to ``install_max_attempts``.
  Draws come from the stream ``hosting.<app>.install``.
- **RAM**: no limits. When the processes use more than the host's RAM, the kernel
  kills the largest (``oom_kill``) and systemd restarts it after RestartSec.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from fleet_sim.hosting import defaults
from fleet_sim.hosting.backoff import Backoff, service_restart
from fleet_sim.hosting.instance import PROVISIONING, AppProcess, Fetch, Instance, draw_s
from fleet_sim.hosting.kernel import Kernel
from fleet_sim.hosting.specs import AppSpec
from fleet_sim.model.distributions import Deterministic, Distribution
from fleet_sim.rng import Streams

CONFLICT_POLICIES = ("refuse", "fail-install")
#: default install time: a configuration-management run (defaults.SCRIPTED_INSTALL_S)
SCRIPTED_INSTALL = Deterministic(defaults.SCRIPTED_INSTALL_S)


@dataclass(frozen=True)
class BareMetalParams:
    """Shared OS: ``cpu_ratio`` (CPU requests may add up to cores × ratio),
    ``conflict_policy`` (``"refuse"`` | ``"fail-install"``), install time and failures,
    systemd restart delay (s), host OS RAM (MiB)."""

    cpu_ratio: float = 1.0
    conflict_policy: str = "refuse"
    install_s: Distribution = SCRIPTED_INSTALL
    install_step_failure_p: float = defaults.INSTALL_STEP_FAILURE_P
    install_max_attempts: int = 1 + defaults.PROVISION_MAX_RETRIES
    restart_backoff_s: float = defaults.SERVICE_RESTART_BACKOFF_S
    host_os_ram_mib: float = defaults.HOST_OS_RAM_MIB


class SharedOS:
    """A host's OS shared by apps installed as processes (bare metal), with ``params``.

    ``kernel``: the host's kernel (see :func:`fleet_sim.hosting.kernel.host_kernel`).
    ``restart``: how a killed process comes back (systemd RestartSec
    ``params.restart_backoff_s`` and its start rate limit; None: never). ``fetch`` is
    not used: the packages of an install are part of ``install_s`` (docs/model.md §11).
    """

    name = "baremetal"
    Params = BareMetalParams
    image = None
    in_place = True

    def __init__(self, kernel: Kernel, streams: Streams, params: BareMetalParams, *,
                 keep_jobs: bool = False, fetch: Fetch | None = None):
        if params.conflict_policy not in CONFLICT_POLICIES:
            raise ValueError(f"unknown conflict_policy {params.conflict_policy!r}; "
                             f"valid: {', '.join(CONFLICT_POLICIES)}")
        del fetch
        self.kernel = kernel
        self.streams = streams
        self.params = params
        self.restart: Backoff | None = service_restart(params.restart_backoff_s)
        self.keep_jobs = keep_jobs

    def process(self, app: AppSpec) -> AppProcess:
        """``app`` as a process on this OS, not yet admitted."""
        return AppProcess(app.name, app, self.kernel, self.streams, installer=self,
                          check_dependencies=self.params.conflict_policy == "refuse",
                          backoff=self.restart, keep_jobs=self.keep_jobs)

    def admit(self, app: AppSpec) -> AppProcess:
        """Admit ``app`` (raises ConflictError / CapacityError); launch it to install and run."""
        return self.process(app).admit()  # type: ignore[return-value]

    # ------------------------------------------------------------------ HostingMode
    def candidate(self, app: AppSpec) -> Instance:
        """What would be admitted for ``app``: its process (not admitted)."""
        return self.process(app)

    def host_app(self, app: AppSpec) -> list[tuple[Instance, Instance | None]]:
        """Admit ``app``'s process: ``[(process, None)]``."""
        return [(self.admit(app), None)]

    def cpu_key(self, app: AppSpec) -> str:
        """Its CPU request."""
        return "cpu_request_cores"

    # ------------------------------------------------------------------ provisioning
    def install(self, proc: AppProcess) -> Generator[simpy.Event, Any, bool]:
        """SimPy generator: install ``proc``'s app and its dependencies; return whether it
        succeeded. Each attempt takes a draw of ``install_s`` (s); with ``fail-install``
        it looks for conflicting versions once the steps succeeded."""
        p = self.params
        env = proc.env
        rng = proc.streams.get(f"hosting.{proc.name}.install")
        deps = proc.app.dependencies
        p_ok = (1.0 - p.install_step_failure_p) ** (len(deps) + 1)
        for attempt in range(1, p.install_max_attempts + 1):
            yield env.timeout(draw_s(p.install_s, rng))
            if proc.state != PROVISIONING:
                return False
            if rng.random() >= p_ok:
                proc.event("install_failed", f"attempt={attempt}: an install step failed")
                continue
            if p.conflict_policy == "fail-install":
                bad = proc.kernel.install(proc, deps)  # type: ignore[arg-type]
                if bad:
                    proc.event("install_failed",
                               f"attempt={attempt}: dependency conflict: {', '.join(bad)}")
                    return False
            return True
        return False
