"""Helpers for the hosting-mode tests: tiny hosts and apps with hand-checkable numbers."""

from __future__ import annotations

import pytest
import simpy

from fleet_sim.hosting.specs import AppSpec, DemandSpec, JobsSpec
from fleet_sim.model.distributions import Deterministic
from fleet_sim.model.host import Host
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams

#: no install / boot / start delay, so allocations are checked from t = 0
NOW = Deterministic(0.0)


@pytest.fixture
def env() -> simpy.Environment:
    return simpy.Environment()


@pytest.fixture
def streams() -> Streams:
    return Streams(0)


@pytest.fixture
def recorder() -> ChangePointRecorder:
    return ChangePointRecorder()


def make_host(env, cores=8.0, ram_mib=65_536.0, recorder=None, name="h") -> Host:
    return Host(env, name, cores=cores, ram_mib=ram_mib, recorder=recorder)


def steady(name: str, cores: float, threads: int, **kw) -> AppSpec:
    """An app whose one process wants ``cores`` all the time."""
    kw.setdefault("cpu_request_cores", 1.0)
    kw.setdefault("ram_mib", 100.0)
    return AppSpec(name, threads=threads,
                   workloads=(DemandSpec("cpu", "constant", {"cores": cores}),), **kw)


def job_app(name: str, threads: int, **kw) -> AppSpec:
    """An app whose jobs the test submits by hand (its Poisson feed never fires in time)."""
    kw.setdefault("ram_mib", 100.0)
    return AppSpec(name, threads=threads,
                   workloads=(JobsSpec("req", 1e-9, Deterministic(1.0), 1.0),), **kw)


def events(recorder, kind=None) -> list[tuple[float, str, str]]:
    """(t, kind, entity) of the recorded events, optionally of one kind."""
    ev = recorder.data.get("events", {"t": [], "kind": [], "entity": []})
    rows = list(zip(ev["t"], ev["kind"], ev["entity"], strict=True))
    return [r for r in rows if kind is None or r[1] == kind]


def last_row(recorder, table: str, key: str, name: str) -> dict:
    """The last change point of ``name`` in ``table`` (key column ``key``)."""
    cols = recorder.data[table]
    idx = [i for i, v in enumerate(cols[key]) if v == name][-1]
    return {c: vals[idx] for c, vals in cols.items()}


def launch_all(env, kernel_user, *apps, until=1.0) -> list:
    """Admit and launch ``apps`` on a shared OS or container runtime, run to ``until``,
    and bring the host up to date."""
    instances = [kernel_user.admit(a) for a in apps]
    for inst in instances:
        inst.launch()
    env.run(until=until)
    kernel_user.kernel.host.sync()
    return instances
