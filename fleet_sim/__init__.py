"""fleet_sim: discrete-event simulation of server fleets under bare metal, VMs and containers.

The friendly surface mirrors the ``fleet-sim`` command line::

    import fleet_sim as fs

    res = fs.run("experiments/demo.toml", seed=1, set={"hosting.mode": "vm"})
    res.summary, res.workloads, res.jobs          # pandas DataFrames
    sw = fs.sweep("demo", params={"hosting.mode": ["baremetal", "vm", "container"]},
                  replications=3, out="results/demo-sweep")
    sw.summarize()                                # mean and 95 % CI per metric
    runs = fs.load("results/demo-sweep")          # tables with swept parameters as columns

Names are imported lazily, so ``import fleet_sim`` stays light.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleet_sim.results.store import Results, load
    from fleet_sim.scenarios.runner import run, sweep, validate

__all__ = ["Results", "__version__", "load", "run", "sweep", "validate"]

try:
    __version__ = metadata.version("fleet_sim")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "unknown"

_LAZY = {
    "run": "fleet_sim.scenarios.runner",
    "sweep": "fleet_sim.scenarios.runner",
    "validate": "fleet_sim.scenarios.runner",
    "load": "fleet_sim.results.store",
    "Results": "fleet_sim.results.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fleet_sim' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
