"""The hosting modes behind one protocol, by name (docs/model.md §2, §10).

A mode is a runtime on a host's kernel that implements :class:`HostingMode`:
:class:`~fleet_sim.hosting.baremetal.SharedOS` (``"baremetal"``: one process per app
on the shared OS), :class:`~fleet_sim.hosting.hypervisor.Hypervisor` (``"vm"``: a VM
per app, the app inside) and :class:`~fleet_sim.hosting.containers.ContainerRuntime`
(``"container"``: a container per app). Each takes its parameters as one frozen
dataclass (its ``Params``: :class:`~fleet_sim.hosting.baremetal.BareMetalParams`,
:class:`~fleet_sim.hosting.hypervisor.VmParams`,
:class:`~fleet_sim.hosting.containers.ContainerParams`), whose defaults come from
:mod:`fleet_sim.hosting.defaults`. How an instance gets ready to run (install, image
copy + boot, pull + start) is its ``provision`` hook
(:meth:`fleet_sim.hosting.instance.Instance.provision`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, ClassVar, Protocol

from fleet_sim.hosting.baremetal import BareMetalParams, SharedOS
from fleet_sim.hosting.containers import ContainerParams, ContainerRuntime
from fleet_sim.hosting.hypervisor import Hypervisor, VmParams
from fleet_sim.hosting.instance import Fetch, Instance
from fleet_sim.hosting.kernel import Kernel
from fleet_sim.hosting.specs import AppSpec
from fleet_sim.rng import Streams

ModeParams = BareMetalParams | VmParams | ContainerParams

#: an admitted instance and the instance it waits for (None: none), in launch order
Hosted = tuple[Instance, Instance | None]


class HostingMode(Protocol):
    """A hosting mode's runtime on one host's kernel.

    Built as ``Mode(kernel, streams, params, keep_jobs=…, fetch=…)`` (``fetch``: the
    image transfer before an instance starts, see
    :class:`fleet_sim.images.supply.ImageSupply`).
    """

    name: ClassVar[str]
    Params: ClassVar[type]
    #: what its instances fetch before they start: ``"vm"`` (a VM image),
    #: ``"container"`` (image layers, unpacked on the host) or None (nothing)
    image: ClassVar[str | None]
    #: a rollout replaces an instance where it runs (a reinstall on a shared OS)
    #: instead of starting the new one beside it
    in_place: ClassVar[bool]
    kernel: Kernel

    def candidate(self, app: AppSpec) -> Instance:
        """What would be admitted on the host for ``app``, not admitted: its
        ``request`` is what placement sees."""
        ...

    def host_app(self, app: AppSpec) -> list[Hosted]:
        """Admit ``app`` now (raises CapacityError or ConflictError): its instances,
        outermost first, each with the instance it waits for; the last one runs the
        app's workloads."""
        ...

    def cpu_key(self, app: AppSpec) -> str:
        """The field of ``app`` that sizes the CPU it asks for on the host."""
        ...


#: mode name → its runtime class
RUNTIMES: Mapping[str, type[HostingMode]] = {
    m.name: m for m in (SharedOS, Hypervisor, ContainerRuntime)}  # type: ignore[misc]
#: the modes' names
MODES = tuple(RUNTIMES)


def hosting_mode(mode: str) -> type[HostingMode]:
    """The runtime class of ``mode``; ValueError naming the valid ones if unknown."""
    if mode not in RUNTIMES:
        raise ValueError(f"unknown hosting mode {mode!r}; valid: {', '.join(MODES)}")
    return RUNTIMES[mode]


def mode_params(mode: str, params: ModeParams | Mapping[str, Any] | None = None) -> ModeParams:
    """The parameters of ``mode`` from its dataclass, a mapping (e.g. a TOML table,
    for library callers) or None (the defaults).

    Raises ValueError for an unknown mode or parameter, listing the valid ones.
    """
    cls = hosting_mode(mode).Params
    if params is None:
        return cls()
    if isinstance(params, cls):
        return params
    if not isinstance(params, Mapping):
        raise TypeError(f"{mode} parameters must be a {cls.__name__} or a mapping, "
                        f"got {type(params).__name__}")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {mode} parameters {unknown}; valid: {', '.join(allowed)}")
    kwargs = dict(params)
    if isinstance(kwargs.get("guest_containers"), Mapping):  # a VM's guest runtime
        kwargs["guest_containers"] = mode_params("container", kwargs["guest_containers"])
    return cls(**kwargs)


def runtime(mode: str, kernel: Kernel, streams: Streams, params: ModeParams, *,
            keep_jobs: bool = False, fetch: Fetch | None = None) -> HostingMode:
    """The runtime of ``mode`` on ``kernel`` with ``params``."""
    return hosting_mode(mode)(kernel, streams, params,  # type: ignore[call-arg]
                              keep_jobs=keep_jobs, fetch=fetch)
