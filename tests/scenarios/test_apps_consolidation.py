"""``[consolidation]`` beside ``[[apps]]``: the policies move the run's own instances
(docs/model.md §5.6) from a scenario file, on the run's network and clock."""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest

import fleet_sim as fs
from fleet_sim import cli
from fleet_sim.errors import ConfigError, ConfigErrors
from fleet_sim.report import answer
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.build import build

#: eight light web replicas spread worst-fit over six 8-core hosts (the consolidator
#: sees each guest's CPU demand at the instant of its round: a steady base of 0.2 cores
#: and, at times, requests)
SPREAD = {
    "run": {"duration_s": 2400, "warmup_s": 300, "seed": 3,
            "record": ["hosts", "workloads", "jobs", "events"]},
    "fleet": {"hosts": [{"type": "std", "count": 6, "cores": 8, "ram_mib": 32768,
                         "power": {"idle_w": 100, "peak_w": 400}}]},
    "hosting": {"mode": "vm", "vm": {"cpu_ratio": 8.0}, "container": {"cpu_ratio": 8.0}},
    "placement": {"policy": "worst-fit"},
    "apps": [{"name": "web", "replicas": 8, "threads": 2, "cpu_request_cores": 2.0,
              "ram_mib": 1024, "vcpus": 2,
              "workloads": [{"kind": "constant", "name": "base", "cores": 0.2},
                            {"kind": "jobs", "name": "requests", "rate_per_s": 1.0,
                             "work_core_s": {"dist": "exponential", "mean": 0.05},
                             "max_cores": 1.0}]}],
    "consolidation": {"policy": "thr-mmt"},
}


def scenario(mode="vm", **consolidation):
    data = copy.deepcopy(SPREAD)
    data["hosting"]["mode"] = mode
    if consolidation.pop("none", False):
        del data["consolidation"]
    else:
        data["consolidation"].update(consolidation)
    return data


def run(data):
    sim = build(cfg.validate(data))
    sim.run()
    sim.finalize()
    return sim, sim.tables()


def error(data) -> str:
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        cfg.validate(data)
    return str(info.value)


@pytest.mark.parametrize("mode", ["vm", "container"])
def test_consolidation_from_a_scenario_moves_instances_and_switches_hosts_off(mode):
    sim, tables = run(scenario(mode))
    still, still_tables = run(scenario(mode, none=True))
    summary, baseline = tables["summary"].iloc[0], still_tables["summary"].iloc[0]
    cons = sim.consolidator
    assert cons is not None and cons.moves > 0
    assert summary["migrations"] == cons.moves - cons.refused > 0
    assert summary["host_shutdowns"] == cons.shutdowns > 0
    # the emptied hosts draw nothing: less energy than the same run left spread
    # (asking for about the same CPU: a moved instance's series end where it stopped)
    assert summary["demand_core_s"] == pytest.approx(baseline["demand_core_s"], rel=0.05)
    assert summary["energy_kwh"] < 0.9 * baseline["energy_kwh"]
    assert math.isnan(baseline["migrations"]) and sim.consolidator is not None
    assert still.consolidator is None
    # each replica ends on exactly one host, and a host is off exactly when it holds none
    dep = sim.deployment
    assert sorted(dep.instances) == sorted(still.deployment.instances)
    held = [name for s in dep.sites for name in s.kernel.instances]
    assert len(held) == len(set(held)) == 8
    for s in dep.sites:
        assert (s.host.power_state == "off") == (not s.kernel.instances)
    events = tables["events"]
    assert (events["kind"] == "host_off").sum() == cons.shutdowns
    kind = "migration" if mode == "vm" else "move"
    assert (events["kind"] == kind).sum() > 0
    # a switched-off host's rows of the hosts table draw 0 W
    hosts = tables["hosts"]
    off = events[events["kind"] == "host_off"].iloc[0]
    later = hosts[(hosts["host"] == off["entity"]) & (hosts["t"] >= off["t"])]
    assert isinstance(hosts, pd.DataFrame) and (later["power_w"].iloc[0] == 0.0)


def test_same_seed_same_tables():
    _, a = run(scenario("vm"))
    _, b = run(scenario("vm"))
    pd.testing.assert_frame_equal(a["summary"], b["summary"])
    pd.testing.assert_frame_equal(a["events"], b["events"])


def test_dvfs_and_bare_metal_move_nothing():
    for data in (scenario("vm", policy="dvfs"), scenario("baremetal")):
        sim, tables = run(data)
        assert sim.consolidator is None
        row = tables["summary"].iloc[0]  # no consolidator: nothing counted
        assert math.isnan(row["migrations"]) and math.isnan(row["host_shutdowns"])


def test_keys_of_the_traces_study_only_are_refused_with_the_key():
    text = error(scenario(policy="npa"))
    assert 'consolidation.policy: "npa"' in text and "dvfs (no moves)" in text
    assert "consolidation.ram: applies to [traces] guests only" in error(
        scenario(ram="cloudsim"))
    assert "consolidation.migration: applies to [traces] guests only" in error(
        scenario(migration="cloudsim"))
    assert "consolidation.stop_s" in error(scenario(stop_s=5.0))
    # pre-copy, its parameters and the power states apply to instances
    cfg.validate(scenario(migration="precopy", dirty_mb_s=20.0, switch_on_s=60.0,
                          switch_on_w=150.0))
    data = scenario()
    data["failures"] = {"host_types": {"std": {"mtbf_s": 3600, "mttr_s": 600}}}
    assert "failures: failures beside the consolidation" in error(data)


@pytest.mark.parametrize("mode", ["vm", "container"])
def test_instances_a_rollout_made_are_moved_like_the_others(mode):
    data = scenario(mode)
    data["rollouts"] = [{"app": "web", "at_s": 30.0, "health_failure_p": 0.0}]
    sim, tables = run(data)
    events, jobs = tables["events"], tables["jobs"]
    kind = "migration" if mode == "vm" else "move"
    moved = events[events["kind"] == kind]
    assert moved["entity"].str.contains("@").any()  # a new version's instance moved
    assert (events["kind"] == "move_refused").sum() == sim.consolidator.refused
    assert not events.loc[events["kind"] == "move_refused", "detail"].str.contains(
        "zip").any()
    assert not jobs.duplicated(["workload", "job_id"]).any()


def test_the_answer_of_a_consolidation_sweep_leads_with_energy_and_moves(tmp_path, capsys):
    """`fleet-sim report` on runs that consolidate puts energy, moves and hosts switched
    off first, before the requests' response times."""
    out = tmp_path / "sweep"
    fs.sweep(scenario(), params={"consolidation.policy": ["dvfs", "thr-mmt"]}, out=out,
             workers=1, progress=False)
    energy = answer.energy(fs.load(out))
    assert list(energy.index) == ["energy_kwh", "hosts_on_mean", "migrations",
                                  "host_shutdowns"]
    dvfs, thr = "consolidation.policy=dvfs", "consolidation.policy=thr-mmt"
    assert list(energy[dvfs].loc[["migrations", "host_shutdowns"]]) == ["–", "–"]
    assert int(energy.loc["migrations", thr]) > 0
    kwh = energy.loc["energy_kwh"].iloc[1:].astype(float)
    assert kwh[thr] < 0.9 * kwh[dvfs]
    # dvfs keeps every host on; thr-mmt switches the ones it empties off
    on = energy.loc["hosts_on_mean"].iloc[1:].astype(float)
    hosts = fs.load(out).table("summary")["hosts"].iloc[0]
    assert on[dvfs] == pytest.approx(hosts, rel=1e-12) and on[thr] < hosts - 1
    assert cli.main(["report", str(out), "--out", str(tmp_path / "rep")]) == cli.EXIT_OK
    printed = capsys.readouterr().out
    assert 0 < printed.index("answer: energy and moves") < printed.index(
        "answer: job workloads")
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    answer_part = page[page.index("<h2>Answer</h2>"):]
    assert answer_part.index("energy_kwh") < answer_part.index("p99 response time")
    # without [consolidation] there is nothing to lead with
    plain = tmp_path / "plain"
    fs.run(scenario(none=True), out=plain, progress=False)
    assert answer.energy(fs.load(plain)).empty
