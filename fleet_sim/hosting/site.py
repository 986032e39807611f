"""One host under a hosting mode: its kernel and the mode's runtime on it (docs/model.md §2)."""

from __future__ import annotations

import simpy

from fleet_sim.hosting import defaults
from fleet_sim.hosting.instance import Fetch, Instance
from fleet_sim.hosting.kernel import host_kernel
from fleet_sim.hosting.modes import Hosted, ModeParams, runtime
from fleet_sim.hosting.specs import AppSpec, HostSpec
from fleet_sim.model.host import Host
from fleet_sim.model.protocols import Recorder
from fleet_sim.numerics.power import LinearPower
from fleet_sim.rng import Streams


class Site:
    """``host`` under ``mode`` with ``params``: the host's kernel (its ``cpu_ratio`` and
    host OS RAM) and the mode's runtime (a :class:`~fleet_sim.hosting.modes.HostingMode`)."""

    def __init__(self, host: Host, mode: str, params: ModeParams, streams: Streams, *,
                 keep_jobs: bool = False, fetch: Fetch | None = None):
        self.host = host
        self.mode = mode
        self.kernel = host_kernel(host, cpu_ratio=params.cpu_ratio,
                                  os_ram_mib=params.host_os_ram_mib)
        self.runtime = runtime(mode, self.kernel, streams, params, keep_jobs=keep_jobs,
                               fetch=fetch)

    def candidate(self, app: AppSpec) -> Instance:
        """What would be admitted on the host for ``app`` (not admitted)."""
        return self.runtime.candidate(app)

    def host_app(self, app: AppSpec) -> list[Hosted]:
        """Admit ``app``; return (instance, the instance it waits for) in launch order."""
        return self.runtime.host_app(app)


def as_host(env: simpy.Environment, h: Host | HostSpec, recorder: Recorder | None) -> Host:
    """``h`` itself, or the host a HostSpec describes (power: the published default)."""
    if isinstance(h, Host):
        return h
    return Host(env, h.name, h.cores, h.ram_mib, h.speed, recorder=recorder,
                power=LinearPower(defaults.HOST_IDLE_W, defaults.HOST_PEAK_W))
