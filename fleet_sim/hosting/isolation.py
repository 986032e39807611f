"""Isolation and blast radius (docs/model.md §6).

A compromise climbs isolation boundaries from the compromised app: out of its
container to its kernel (a *kernel escape*, probability ``kernel_escape_p``), out
of a VM's guest kernel to the hypervisor (a *hypervisor escape*,
``hypervisor_escape_p``). Whoever holds a kernel holds everything on it, and
whoever holds the hypervisor holds every VM. So another app B is exposed with
the product of the escapes needed to reach the lowest kernel A and B share:

- same shared OS (A is a plain process): 1;
- same kernel, A in a container: ``kernel_escape_p``;
- another VM on the same host: ``hypervisor_escape_p`` (× ``kernel_escape_p``
  if A is also in a container inside its VM);
- another host: 0 (no lateral movement over the network is modelled).

:func:`sample_exposed` draws which escapes succeed once per compromise, so apps
behind the same boundary fall together; :func:`compromise` records one compromise
and what it exposes. A host failure (see ``Deployment.fail_host``) takes down
everything on the host.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fleet_sim.hosting import defaults
from fleet_sim.hosting.instance import Instance
from fleet_sim.hosting.kernel import Kernel

KERNEL_ESCAPE = "kernel-escape"
HYPERVISOR_ESCAPE = "hypervisor-escape"
SHARED_OS = "shared-os"


@dataclass(frozen=True)
class Exposure:
    """App ``app`` (instance ``instance`` on ``host``) is exposed with ``probability``
    once the compromised app breaks through the boundaries in ``via`` (in order)."""

    app: str
    instance: str
    host: str
    probability: float
    via: tuple[str, ...]


def _kernels(kernel: Kernel) -> list[Kernel]:
    chain = [kernel]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)  # type: ignore[arg-type]
    return chain


def exposures(compromised: Instance, others: Iterable[Instance],
              kernel_escape_p: float = defaults.KERNEL_ESCAPE_P,
              hypervisor_escape_p: float = defaults.HYPERVISOR_ESCAPE_P) -> list[Exposure]:
    """Who else ``compromised`` exposes, and with which probability (see module doc)."""
    mine = _kernels(compromised.kernel)
    out = []
    for other in others:
        if other is compromised:
            continue
        theirs = set(map(id, _kernels(other.kernel)))
        common = next((i for i, k in enumerate(mine) if id(k) in theirs), None)
        if common is None:
            continue  # another host
        via: list[str] = []
        p = 1.0
        if compromised.contained:
            via.append(KERNEL_ESCAPE)
            p *= kernel_escape_p
        for _ in range(common):
            via.append(HYPERVISOR_ESCAPE)
            p *= hypervisor_escape_p
        out.append(Exposure(other.app.name, other.name, other.host.name, p,
                            tuple(via) or (SHARED_OS,)))
    return out


def sample_exposed(found: Iterable[Exposure], rng: np.random.Generator,
                   kernel_escape_p: float = defaults.KERNEL_ESCAPE_P,
                   hypervisor_escape_p: float = defaults.HYPERVISOR_ESCAPE_P) -> list[Exposure]:
    """The exposures that happen in one draw: each boundary is broken (or not) once,
    kernel escape first, then the hypervisor escape."""
    broke = {SHARED_OS: True,
             KERNEL_ESCAPE: bool(rng.random() < kernel_escape_p),
             HYPERVISOR_ESCAPE: bool(rng.random() < hypervisor_escape_p)}
    return [e for e in found if all(broke[b] for b in e.via)]


def compromise(compromised: Instance, app: str, others: Iterable[Instance],
               rng: np.random.Generator | None = None,
               kernel_escape_p: float = defaults.KERNEL_ESCAPE_P,
               hypervisor_escape_p: float = defaults.HYPERVISOR_ESCAPE_P) -> list[Exposure]:
    """``compromised`` (an instance of ``app``) is compromised now (event
    ``compromised``). Without ``rng``: every possible exposure among ``others``
    (``exposed`` events with their probability); with it: the exposures of one draw
    of the escapes."""
    found = exposures(compromised, others, kernel_escape_p, hypervisor_escape_p)
    if rng is not None:
        found = sample_exposed(found, rng, kernel_escape_p, hypervisor_escape_p)
    rec = compromised.host.recorder
    now = compromised.env.now
    rec.event(now, "compromised", compromised.name, f"app={app}", host=compromised.host.name)
    for e in found:
        rec.event(now, "exposed", e.instance,
                  f"app={e.app} by={app} p={e.probability:g} via={'+'.join(e.via)}")
    return found
