"""The consolidation study as a scenario (docs/model.md §12): ``[traces]`` and
``[consolidation]`` keys, their errors, and a small day run end to end."""

from __future__ import annotations

import pytest

from fleet_sim.errors import ConfigError, ConfigErrors
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.build import build
from fleet_sim.scenarios.consolidation import fleet_hosts
from fleet_sim.scenarios.runner import EXPERIMENTS_DIR
from fleet_sim.scenarios.traces import planetlab_day

SCENARIO = EXPERIMENTS_DIR / "consolidation.toml"
SMALL = {"traces.vms": 40, "fleet.hosts.g4.count": 15, "fleet.hosts.g5.count": 15,
         "run.duration_s": 7200}


def load(**over):
    return cfg.load_config(SCENARIO, {**SMALL, **over})


def error(**over) -> str:
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        load(**over)
    return str(info.value)


def test_names_of_the_policies_and_days():
    assert load(**{"consolidation.policy": "lr-mc"}).consolidation.policy == "lr-mc"
    assert load(**{"traces.day": 20110322}).traces.day == "20110322"
    assert len(cfg.CONSOLIDATION_POLICIES) == 22


def test_bad_keys_name_the_key_and_what_is_allowed():
    assert "consolidation.policy: unknown consolidation policy 'thr-xx'" in error(
        **{"consolidation.policy": "thr-xx"})
    assert "npa, dvfs or <detector>-<selection>" in error(**{"consolidation.policy": "thr"})
    text = error(**{"traces.day": 20110304})
    assert "traces.day: no bundled PlanetLab day '20110304'" in text and "20110303" in text
    assert "consolidation.threshold" in error(**{"consolidation.threshold": -1})


def test_traces_make_the_guests_and_consolidation_needs_them():
    data = cfg.read_toml(SCENARIO)
    data["apps"] = [{"name": "web", "replicas": 1}]
    with pytest.raises(ConfigError, match=r"apps: 1 \[\[apps\]\] beside \[traces\]"):
        cfg.validate(data)
    del data["apps"], data["traces"]
    with pytest.raises(ConfigError, match="consolidation: consolidation without guests"):
        cfg.validate(data)


def test_hosts_alternate_types_and_express_mips_through_core_speed():
    hosts = fleet_hosts(cfg.load_config(SCENARIO))
    assert len(hosts) == 800
    assert [h.name for h in hosts[:4]] == ["g4000", "g5000", "g4001", "g5001"]
    assert [h.capacity.core_mips for h in hosts[:2]] == pytest.approx([1860.0, 2660.0])
    assert hosts[1].capacity.power.points_w[-1] == 135.0


def run(config):
    sim = build(config)
    sim.start()
    sim.run()
    sim.finalize()
    return sim, sim.tables()["summary"].iloc[0]


def test_a_small_day_end_to_end_is_deterministic_and_saves_energy():
    figures = ["energy_kwh", "migrations", "slatah", "pdm", "slav", "host_shutdowns"]
    sim, thr = run(load())
    assert len(sim.dynamic.names) == 40
    assert sim.dynamic.names == planetlab_day("20110303").vms[:40]
    _, again = run(load())
    assert thr[figures].tolist() == again[figures].tolist()
    _, npa = run(load(**{"consolidation.policy": "npa"}))
    _, dvfs = run(load(**{"consolidation.policy": "dvfs"}))
    # NPA: every host at peak power all the time (15 × 117 W + 15 × 135 W for 2 h)
    assert npa["energy_kwh"] == pytest.approx((15 * 117 + 15 * 135) * 2 / 1000)
    assert npa["migrations"] == dvfs["migrations"] == 0
    assert thr["energy_kwh"] < dvfs["energy_kwh"] < npa["energy_kwh"]
    assert thr["migrations"] > 0 and thr["slav"] == pytest.approx(thr["slatah"] * thr["pdm"])
    # without consolidation the columns are NaN
    assert "migrations" in sim.tables()["summary"].columns


def test_per_mode_bare_metal_never_moves_containers_lose_cpu_while_moving():
    _, vm = run(load())
    _, container = run(load(**{"hosting.mode": "container"}))
    _, bare = run(load(**{"hosting.mode": "baremetal"}))
    assert bare["migrations"] == 0 and bare["pdm"] == 0
    assert vm["migrations"] > 0 and container["migrations"] > 0
    assert container["pdm"] > 0


@pytest.mark.parametrize("policy", ["thr-mmt", "npa"])
def test_the_hosts_table_of_a_day_is_the_moving_guests_hosts(policy):
    from fleet_sim.numerics.timeweighted import integral
    from fleet_sim.units import J_PER_KWH

    sim, summary = run(load(**{"consolidation.policy": policy, "run.record": ["hosts", "events"]}))
    hosts = sim.tables()["hosts"]
    assert sorted(hosts["host"].unique()) == sorted(h.name for h in sim.dynamic.hosts)
    end = 7200.0
    energy, peak = 0.0, 0.0
    for _, rows in hosts.groupby("host"):
        energy += integral(rows["t"], rows["power_w"], end) / J_PER_KWH
        peak = max(peak, float(rows["cpu_utilization"].max()))
    # the summary's energy is the consolidation figure; the table's power gives it again
    assert energy == pytest.approx(summary["energy_kwh"], rel=1e-9)
    assert 0.0 < peak <= 1.0 + 1e-12
    assert summary["cpu_utilization_mean"] > 0.0
    guests_ram = float(sim.dynamic.v_ram.sum())
    at_start = hosts[hosts["t"] == 0.0].drop_duplicates("host", keep="last")
    assert at_start["ram_used_mib"].sum() == pytest.approx(guests_ram)  # every guest placed
    if policy == "thr-mmt":  # hosts left empty are switched off: they draw nothing
        off = hosts[(hosts["cpu_used_cores"] == 0.0) & (hosts["ram_used_mib"] == 0.0)]
        assert (off["power_w"] == 0.0).any()


@pytest.mark.parametrize("mode", ["vm", "container"])
def test_moves_are_transfers_on_the_run_network(mode):
    """Pre-copy rounds (VMs) and image pulls (containers) cross the run's network: its
    ``links`` table carries them, and what the sources sent is what the targets got."""
    sim, summary = run(load(**{"hosting.mode": mode, "consolidation.migration": "precopy",
                               "run.record": ["links", "events"]}))
    last = sim.tables()["links"].groupby("link").last()  # rows are in time order
    carried = last["bytes_mb"] + last["allocated_mb_s"] * (7200.0 - last["t"])  # by the end
    sent = carried[carried.index.str.endswith(".up")].sum()
    got = carried[carried.index.str.endswith(".down")].sum()
    assert summary["migrations"] > 0 and sent > 0
    assert sent == pytest.approx(got, rel=1e-9)
    if mode == "container":  # every byte came from the registry
        assert carried["registry.up"] == pytest.approx(sent, rel=1e-9)
    else:  # host to host, at least each moved VM's RAM once
        assert "registry.up" not in carried or carried["registry.up"] == 0.0
        assert sent >= summary["migrations"] * 613 * 1.048576 * (1 - 1e-9)
