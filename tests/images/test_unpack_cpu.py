"""Unpacking runs on the host's CPU: one-off work sharing cores max-min with the
workloads, the pull resuming at its exact finish (docs/model.md §5.2)."""

from __future__ import annotations

from typing import Any

import pytest
import simpy

from fleet_sim.model.cputree import CpuNode
from fleet_sim.model.demand import DemandWorkload
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import Job, JobWorkload
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.build import build


class Steps:
    """A demand profile of given ``(t, cores)`` steps."""

    def __init__(self, *steps: tuple[float, float]):
        self._steps = steps

    def steps(self):
        yield from self._steps


def _host(cores: float = 2.0, *competitors: Steps) -> tuple[simpy.Environment, Host]:
    """A host whose root holds a demand workload per competitor profile."""
    env = simpy.Environment()
    host = Host(env, "h", cores)
    for i, profile in enumerate(competitors):
        DemandWorkload(host, f"busy{i}", profile).start()
    return env, host


def _done_at(env: simpy.Environment, host: Host, work_core_s: float, at: float = 0.0,
             parent: CpuNode | None = None) -> dict[str, float]:
    """Run ``work_core_s`` of one-off work (one core at most) from ``at``; when it ends."""
    out: dict[str, float] = {}

    def proc():
        yield env.timeout(at)
        yield host.run(parent or host.root, work_core_s, 1.0)
        out["t"] = env.now

    env.process(proc())
    env.run(until=100)
    host.finalize(100)
    return out


def test_alone_one_core_s_takes_one_second_and_shows_in_the_host_cpu():
    env, host = _host()
    assert _done_at(env, host, 1.0) == {"t": 1.0}
    assert host.cpu.used_core_s == 1.0
    assert host.cpu.jobs_done == 1


def test_beside_two_leaves_wanting_two_cores_it_gets_two_thirds_of_a_core():
    """2 cores shared max-min by three equal claimants (demands 2, 2, 1): 2/3 each, so
    1 core-s of unpacking takes 1.5 s; the host is full meanwhile."""
    env, host = _host(2.0, Steps((0.0, 2.0)), Steps((0.0, 2.0)))
    assert _done_at(env, host, 1.0) == {"t": pytest.approx(1.5, rel=1e-12)}
    assert host.cpu.used_core_s == pytest.approx(200.0)  # full all along


def test_it_speeds_up_at_the_host_s_own_event_and_wakes_exactly_then():
    """As above, but one competitor stops at 0.75 s (a step inside the lazy scheduler):
    0.5 core-s done by then, the other 0.5 at a full core: done at 1.25 s."""
    env, host = _host(2.0, Steps((0.0, 2.0), (0.75, 0.0)), Steps((0.0, 2.0)))
    assert _done_at(env, host, 1.0) == {"t": pytest.approx(1.25, rel=1e-12)}


def test_it_slows_down_when_a_competitor_arrives_from_outside():
    """Alone at full speed until 0.5 s, then beside two leaves wanting 2 cores each
    (2/3 core): the remaining 0.5 core-s take 0.75 s, done at 1.25 s."""
    env, host = _host(2.0)
    late = [DemandWorkload(host, f"late{i}", Steps((0.0, 0.0))) for i in range(2)]

    def arrive():
        yield env.timeout(0.5)
        for wl in late:
            host.set_demand(wl, 2.0)

    env.process(arrive())
    assert _done_at(env, host, 1.0) == {"t": pytest.approx(1.25, rel=1e-12)}


def test_it_is_no_job_of_any_workload():
    """Beside a workload's job of 1 core-s, both on 2 cores: the jobs table holds only
    the workload's job; the host did 2 core-s of work."""
    env = simpy.Environment()
    rec = ChangePointRecorder(["jobs"])
    host = Host(env, "h", 2.0, recorder=rec)
    JobWorkload(host, "w").submit(Job(1.0))
    assert _done_at(env, host, 1.0) == {"t": 1.0}
    jobs = rec.data["jobs"]
    assert list(jobs["workload"]) == ["w"] and list(jobs["finish"]) == [1.0]
    assert host.cpu.used_core_s == 2.0


def test_zero_work_is_done_at_once_and_a_later_start_counts_from_then():
    env, host = _host()
    assert _done_at(env, host, 0.0, at=3.0) == {"t": 3.0}
    env, host = _host()
    assert _done_at(env, host, 2.0, at=3.0) == {"t": 5.0}


# ------------------------------------------------------------------ in a fleet run
def scenario(cores: float, busy_cores: float) -> dict[str, Any]:
    """One host of ``cores`` cores and 1000 MB/s links; two busy apps wanting
    ``busy_cores`` each (containers at the default cpu.weight) and web; at 200 s web's
    rollout pulls one new 100 MB layer (0.1 s to arrive) that unpacks at 100 MB/s per
    core: 1 core-s in the runtime's own cgroup, beside the two busy containers."""
    def app(name: str, cores_wanted: float | None) -> dict[str, Any]:
        a: dict[str, Any] = {"name": name, "replicas": 1, "cpu_request_cores": 0.25,
                             "ram_mib": 512}
        if cores_wanted is not None:
            a["workloads"] = [{"kind": "constant", "cores": cores_wanted}]
        return a
    return {
        "run": {"duration_s": 400, "record": ["events", "links", "hosts", "workloads", "jobs"]},
        "fleet": {"hosts": [{"type": "h", "count": 1, "cores": cores, "nic_mb_s": 1000.0}]},
        "hosting": {"mode": "container", "container": {"start_s": 0.5}},
        "images": {"base_layers_mb": [], "app_layer_mb": 100.0,
                   "registry_uplink_mb_s": 1000.0, "unpack_mb_s_per_core": 100.0},
        "apps": [app("busy1", busy_cores), app("busy2", busy_cores), app("web", None)],
        "rollouts": [{"app": "web", "at_s": 200.0, "strategy": "all-at-once",
                      "changed": "whole-image", "health_failure_p": 0.0}],
    }


def _rollout_pull(cores: float, busy_cores: float) -> tuple[float, Any]:
    sim = build(cfg.validate(scenario(cores, busy_cores)), seed=0)
    sim.run()
    sim.finalize()
    tables = sim.tables()
    v2 = tables["timeline"].query("version == 'v2'")
    assert len(v2) == 1
    return float((v2["transfer_end"] - v2["transfer_start"]).iloc[0]), tables


def test_on_an_idle_host_the_pull_takes_its_download_and_its_unpacking_as_before():
    """32 cores, the busy apps want 1 core each: the unpack gets its core, 1 s."""
    assert _rollout_pull(32.0, 1.0)[0] == pytest.approx(1.0, rel=1e-12)


def test_on_a_full_host_unpacking_shares_the_cores_and_shows_in_its_utilization():
    """2 cores, both busy containers want 2: they and the runtime share by equal
    cpu.weight, 2/3 core each, so the unpack takes 1.5 s; the busy containers get 1
    core each before and after. The host runs 2 cores throughout; the unpack is not a
    job of any app (the jobs table stays empty)."""
    pull_s, tables = _rollout_pull(2.0, 2.0)
    assert pull_s == pytest.approx(1.5, rel=1e-12)
    assert tables["jobs"].empty
    assert (tables["hosts"].query("t >= 2")["cpu_used_cores"] == 2.0).all()
    busy = tables["workloads"].query("t >= 200")
    assert sorted(busy["t"].unique()) == [200.0, pytest.approx(201.5)]
    assert busy.query("t == 200")["allocated_cores"].tolist() == [pytest.approx(2 / 3)] * 2
    assert busy.query("t > 200")["allocated_cores"].tolist() == [pytest.approx(1.0)] * 2


def test_unpacking_on_spare_cores_shows_as_one_more_core_in_use():
    """32 cores, busy apps at 1 core each: 2 cores in use, 3 while the unpack runs."""
    _, tables = _rollout_pull(32.0, 1.0)
    hosts = tables["hosts"].query("t >= 200")
    assert hosts[["t", "cpu_used_cores"]].values.tolist() == [[200.0, 3.0], [201.0, 2.0],
                                                               [201.5, 2.0]]
