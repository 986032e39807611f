"""The shipped experiments: every scenario file validates, and every driver script runs
its study at a tiny size and gets what the physics says (their logic, not their numbers).

Each driver (``experiments/<name>/<name>.py``) is a thin layer over its scenario file
(``experiments/<name>.toml``): its variants are ``--set`` overrides, so they validate too.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import fleet_sim as fs
from fleet_sim import cli
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.runner import EXPERIMENTS_DIR

SCENARIOS = sorted(EXPERIMENTS_DIR.glob("*.toml"))
DRIVERS = ("noisy_neighbor", "density", "rollout", "image_distribution", "consolidation")
SCRIPT = Path(sys.executable).parent / "fleet-sim"


def driver(name: str) -> ModuleType:
    """The driver script ``experiments/<name>/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS_DIR / name / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def validate(path: Path) -> subprocess.CompletedProcess:
    """``fleet-sim validate path``, as a user runs it."""
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "fleet_sim.cli"]
    return subprocess.run([*cmd, "validate", str(path)], capture_output=True, text=True,
                          timeout=120)


def toml(value: object) -> str:
    """A ``--set`` value as TOML text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + "}"
    return str(value)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_file_validates_and_states_its_question(path):
    out = validate(path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"ok: {path}: ")
    assert f"question: {cfg.question(path)}" in out.stdout
    assert cfg.question(path).endswith("?")


@pytest.mark.parametrize("name", DRIVERS)
def test_each_driver_runs_over_its_scenario_file_and_states_its_question(name):
    module = driver(name)
    assert EXPERIMENTS_DIR / f"{name}.toml" == module.SCENARIO
    assert module.__doc__.splitlines()[0].endswith("?")


@pytest.mark.parametrize("name", ["noisy_neighbor", "density"])
def test_every_variant_is_a_valid_override_of_the_scenario_file(name, capsys):
    module = driver(name)
    for variant, overrides in module.VARIANTS.items():
        sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={toml(v)}")]
        assert cli.main(["validate", str(module.SCENARIO), *sets]) == 0, variant
        assert capsys.readouterr().out.startswith(f"ok: {module.SCENARIO}: ")


# ---------------------------------------------------------------- noisy neighbour
NOISY_COLUMNS = ["variant", "victim_p50_s", "victim_p99_s", "victim_mean_s", "victim_jobs",
                 "contention_share", "neighbour_core_s", "neighbour_throttled_s"]


def test_noisy_neighbor_orders_the_modes_as_the_physics_says(capsys):
    nn = driver("noisy_neighbor")
    df = nn.main(["--hours", str(120 / 3600)]).set_index("variant")
    assert ["variant", *df.columns] == NOISY_COLUMNS
    assert list(df.index) == list(nn.VARIANTS)
    assert capsys.readouterr().out.split("\n")[0].split() == NOISY_COLUMNS
    assert (df["victim_jobs"] > 0).all()
    assert (df["contention_share"].between(0, 1)).all()
    # alone: no neighbour CPU; equal cpu.weight shields the victim completely
    assert df.loc["alone", "neighbour_core_s"] == 0
    assert df.loc["container", "victim_p99_s"] == df.loc["alone", "victim_p99_s"]
    assert df.loc["container", "victim_p99_s"] <= df.loc["baremetal", "victim_p99_s"]
    assert df.loc["container", "contention_share"] == 0.0
    assert df.loc["baremetal", "contention_share"] > 0.0  # CFS per thread: spikes hurt
    # VMs sized by request do not contend, but pay the virtualization overhead
    assert df.loc["vm", "contention_share"] == 0.0
    assert df.loc["vm", "victim_mean_s"] > df.loc["alone", "victim_mean_s"]
    # a quota holds the neighbours back and is recorded as throttled time
    assert df.loc["container-quota", "neighbour_throttled_s"] > 0
    assert (df.loc["container-quota", "neighbour_core_s"]
            < df.loc["container", "neighbour_core_s"])
    assert (df.drop("container-quota")["neighbour_throttled_s"] == 0).all()


# ---------------------------------------------------------------- density
DENSITY_COLUMNS = ["mode", "policy", "hosts", "apps_per_host", "cpu_committed", "cpu_used",
                   "ram_reserved", "contention_share", "monthly_cost_usd"]


@pytest.fixture(scope="module")
def density():
    module = driver("density")
    return module, module.run(scale=1, hours=0.01, policies=("first-fit",)).set_index("mode")


def test_density_sizes_every_mode_and_overcommit_needs_fewer_hosts(density):
    module, df = density
    assert ["mode", *df.columns] == DENSITY_COLUMNS
    assert list(df.index) == list(module.VARIANTS)
    assert (df["hosts"] >= 1).all()
    assert (df["apps_per_host"] * df["hosts"]).round().eq(84).all()  # the file's replicas
    assert df.loc["vm-overcommit", "hosts"] <= df.loc["vm", "hosts"]
    assert df.loc["container", "hosts"] <= df.loc["vm", "hosts"]
    ratio = df.index.map(lambda v: module.VARIANTS[v].get("hosting.vm.cpu_ratio", 1.0))
    assert (df["cpu_committed"] <= ratio + 1e-9).all()
    assert (df["cpu_used"].between(0, 1) & df["ram_reserved"].between(0, 1)).all()
    assert df["contention_share"].between(0, 1).all()
    assert (df["monthly_cost_usd"] == df["hosts"] * 450.0).all()


def test_density_finds_the_smallest_fleet(density):
    module, df = density
    over = {**module.scaled(1), **module.VARIANTS["container"], "placement.policy": "first-fit"}
    n = int(df.loc["container", "hosts"])
    assert module.fits(n, over)
    assert n == 1 or not module.fits(n - 1, over)


# ---------------------------------------------------------------- rollout
ROLLOUT_COLUMNS = ["hosts", "mode", "from", "changed", "strategy", "makespan min",
                   "min serving", "p99 before ms", "p99 during ms", "failed before",
                   "failed during", "registry GB", "failed instances", "outcome"]


@pytest.fixture(scope="module")
def rollout():
    module = driver("rollout")
    return module, module.run(sizes=(8, 16))


def test_rollout_matrix_at_tiny_sizes(rollout):
    ro, tables = rollout
    scale, layers, strategies = tables["scale"], tables["layers"], tables["strategies"]
    assert list(scale.columns) == ROLLOUT_COLUMNS == list(layers.columns)
    assert list(strategies.columns) == [*ROLLOUT_COLUMNS[:5], "params", *ROLLOUT_COLUMNS[5:]]
    assert len(scale) == 2 * len(ro.COMBOS) and len(layers) == 2 * len(ro.COMBOS)
    assert len(strategies) == len(ro.STRATEGIES)
    assert set(strategies["hosts"]) == {16}
    for table in tables.values():
        assert table["min serving"].between(0, 1).all()
        assert (table["makespan min"] > 0).all()
    # a rolling update keeps 75 % serving; a surge-only one keeps everyone serving
    assert (scale["min serving"] >= 0.75).all()
    surge = strategies[strategies["params"] == "max_surge=25%, max_unavailable=0"]
    assert (surge["min serving"] == 1.0).all()
    # peers offload the registry; containers shipping one layer send less than whole images
    central = scale[(scale["mode"] == "vm") & (scale["from"] == "central")]["registry GB"]
    p2p = scale[(scale["mode"] == "vm") & (scale["from"] == "p2p")]["registry GB"]
    assert (p2p.to_numpy() <= central.to_numpy()).all()
    by = layers.set_index(["mode", "from", "changed"])["registry GB"]
    assert by["container", "central", "top-layer"] < by["container", "central", "whole-image"]
    # the service is measured before and during each rollout; a request fails (counted by
    # its arrival) only in flight on a replica the rollout stops, or with none healthy:
    # strategies that stop nothing before v2 is healthy lose none that arrived before
    # at_s, and all at once, with no replica for a while, loses far more during it
    for table in tables.values():
        assert (table["p99 before ms"] > 0).all() and (table["p99 during ms"] > 0).all()
    by = strategies.set_index(["strategy", "params"])
    assert by.loc[("blue-green", ""), "failed before"] == 0
    assert by.loc[("rolling", "max_surge=25%, max_unavailable=0"), "failed before"] == 0
    once = by.loc[("all-at-once", "")]
    assert once["failed during"] > 10 * max(1, once["failed before"])


def test_a_host_failure_in_the_middle_of_the_rollout_costs_serving_and_moves_its_replica(
        rollout):
    """The host of the replica replaced last fails 5 s into each mode's rolling update:
    that replica, still serving v1, is killed, so fewer serve than without the failure;
    it is rescheduled on another host and runs again after a container start, before a
    VM's copy and boot, before a reinstall."""
    ro, tables = rollout
    failure = tables["failure"]
    assert list(failure.columns) == [*ROLLOUT_COLUMNS[:5], "host failure",
                                     *ROLLOUT_COLUMNS[5:], "killed", "rescheduled on",
                                     "back after s"]
    modes = ["baremetal", "vm", "container"]
    assert failure["mode"].tolist() == [m for m in modes for _ in range(2)]
    assert set(failure["hosts"]) == {16}
    none = failure[failure["host failure"] == "none"].set_index("mode")
    hit = failure[failure["host failure"] != "none"].set_index("mode")
    failed = hit["host failure"].str.extract(r"^(host\d+) at (\S+) s$")
    assert (failed[1].astype(float) == ro.AT_S + ro.FAILURE["after_s"]).all()
    assert (none["killed"] == "").all() and none["back after s"].isna().all()
    assert (hit["min serving"] < none["min serving"]).all()
    assert hit["killed"].str.fullmatch(r"web-\d+").all()
    assert (hit["rescheduled on"].str.fullmatch(r"host\d+")
            & (hit["rescheduled on"] != failed[0])).all()
    back = hit["back after s"]
    assert 0 < back["container"] < back["vm"] < back["baremetal"]
    # the rollout still completes, with every replica on v2
    assert (hit["outcome"] == "complete").all() and (hit["failed instances"] == 0).all()


def test_a_host_failure_during_a_rollout_conserves_the_services_requests():
    """Every request is one row (ids numbered once over the service), none runs on the
    failed host while it is down, the killed replica serves again on its new host, and
    each failed request was in flight on an instance that was stopped or killed."""
    ro = driver("rollout")
    over = ro.point(8, "vm")
    host = ro.last_replaced(fs.run(ro.SCENARIO, set=over, progress=False))
    res = fs.run(ro.SCENARIO, set=ro.failing(over, host), progress=False)
    jobs, events = res.jobs, res.events
    assert sorted(jobs["job_id"]) == list(range(len(jobs)))
    assert set(jobs["outcome"]) <= {"finished", "failed", "unfinished"}
    failed_at = ro.AT_S + ro.FAILURE["after_s"]
    failure = events[events["kind"] == "host_failure"]
    assert failure[["t", "entity"]].values.tolist() == [[failed_at, host]]
    down = jobs["arrival"].between(failed_at, failed_at + ro.FAILURE["repair_s"])
    assert not (down & (jobs["host"] == host)).any()
    (killed,) = ro.recovery(res)["killed"].split(", ")
    moved = events[(events["entity"] == killed) & (events["t"] >= failed_at)]
    (new_host,) = moved.loc[moved["kind"] == "rescheduled", "host"]
    back_at = moved.loc[moved["kind"] == "start", "t"].min()
    assert new_host != host and back_at > failed_at
    served = jobs[(jobs["replica"] == killed) & (jobs["arrival"] >= back_at)]
    assert len(served) > 0 and set(served["host"]) == {new_host}
    ended = events[events["kind"].isin(("stop", "killed"))]
    for _, job in jobs[jobs["outcome"] == "failed"].iterrows():
        assert job["host"] == "" or ((ended["entity"] == job["replica"])
                                     & (ended["t"] >= job["arrival"])).any(), job


# ---------------------------------------------------------------- image distribution
def test_image_distribution_at_tiny_sizes(tmp_path):
    """Central sends every host the image (N x 3 GB at 1250 MB/s, then the last layer
    unpacks: 1500 MB at 100 MB/s); the swarm is flat in N and sends about one copy;
    lazy starts far sooner; rack mirrors (racks of 40) fetch once per rack, then serve
    it: slower than the registry for one rack, much faster for three; the figure is
    drawn."""
    image = driver("image_distribution")
    table = image.run(sizes=(10, 120))
    assert list(table.columns) == image.COLUMNS
    by = table.set_index(["source", "hosts"])
    for n in (10, 120):
        assert by.loc[("central", n), "p50_s"] == pytest.approx(n * 3000 / 1250 + 15)
        assert by.loc[("central", n), "registry_gb"] == pytest.approx(3 * n)
    assert by.loc[("p2p", 120), "p50_s"] == pytest.approx(by.loc[("p2p", 10), "p50_s"])
    assert by.loc[("p2p", 120), "registry_gb"] < 2 * 3
    assert (by.xs("p2p + lazy")["max_s"] < by.xs("p2p")["p50_s"] / 10).all()
    # one rack: 2.4 s for the mirror, then 10 x 3 GB from it; three racks: 7.2 s, 40 x 3 GB
    assert by.loc[("mirrors", 10), "p50_s"] == pytest.approx(2.4 + 24 + 15)
    assert by.loc[("mirrors", 120), "p50_s"] == pytest.approx(7.2 + 96 + 15)
    assert by.loc[("mirrors", 120), "registry_gb"] == pytest.approx(3 * 3)
    path = image.figure(table, tmp_path / "fig.png")
    assert path.stat().st_size > 0


# ---------------------------------------------------------------- consolidation
CONSOLIDATION_SMALL = {"traces.vms": 30, "fleet.hosts.g4.count": 12,
                       "fleet.hosts.g5.count": 12, "run.duration_s": 3600}


def test_consolidation_tables_at_a_tiny_size(tmp_path):
    module = driver("consolidation")
    assert len(module.POLICIES) == 22
    day = module.one_day("20110303", ["npa", "dvfs", "thr-mmt"], CONSOLIDATION_SMALL)
    assert day["policy"].tolist() == ["npa", "dvfs", "thr-mmt"]
    npa, dvfs, thr = (day.iloc[k] for k in range(3))
    assert thr["energy_kwh"] < dvfs["energy_kwh"] < npa["energy_kwh"]
    medians = module.medians(["20110303", "20110306"], ["thr-mmt"], CONSOLIDATION_SMALL)
    assert medians.iloc[0]["days"] == 2
    modes = module.per_mode("20110303", "thr-mmt", CONSOLIDATION_SMALL)
    assert modes["mode"].tolist() == ["vm", "container", "baremetal", "(dvfs, no moves)"]
    assert modes.set_index("mode").loc["baremetal", "migrations"] == 0
    assert module.figure(modes, tmp_path / "modes.png").stat().st_size > 0


def test_consolidation_runs_are_stored_as_they_finish_and_not_run_again(tmp_path):
    module = driver("consolidation")
    store = tmp_path / "runs.csv"
    first = module.medians(["20110303"], ["dvfs"], CONSOLIDATION_SMALL, store)
    assert len(store.read_text().splitlines()) == 2  # header and the run
    key = module._overrides_key(CONSOLIDATION_SMALL)
    module.RunStore(store).add({"policy": "dvfs", "day": "20110306", "mode": "vm",
                                **{f: 123.0 for f in module.FIGURES}, "wall_s": 0.0,
                                "cpu_s": 0.0, "set": key, "code": module.CODE})
    # the stored row for 2011-03-06 is taken as it is: the median of 123 and the real run
    both = module.medians(["20110303", "20110306"], ["dvfs"], CONSOLIDATION_SMALL, store)
    energy = first.iloc[0]["energy_kwh"]
    assert both.iloc[0]["energy_kwh"] == (energy + 123.0) / 2
    assert len(store.read_text().splitlines()) == 3
    with pytest.raises(ValueError, match="columns"):  # another layout: a clear error
        module.RunStore(store).add({"policy": "dvfs", "day": "20110310", "set": key})
    # keyed by policy, day, mode and the overrides
    assert module.RunStore(store).rows.keys() == {("dvfs", "20110303", "vm", key),
                                                  ("dvfs", "20110306", "vm", key)}
    # a run of other fleet_sim code is not used: the same command runs it anew
    module.RunStore(store).add({"policy": "dvfs", "day": "20110310", "mode": "vm",
                                **{f: 7.0 for f in module.FIGURES}, "wall_s": 0.0,
                                "cpu_s": 0.0, "set": key, "code": "another-code"})
    book = module.RunStore(store)
    assert book.stale == 1 and ("dvfs", "20110310", "vm", key) not in book.rows
    assert len(module.CODE) == 12 and module.code_fingerprint() == module.CODE


def test_consolidating_a_fleets_own_instances_at_a_tiny_size(tmp_path, capsys):
    path = EXPERIMENTS_DIR / "consolidation" / "instances.py"
    spec = importlib.util.spec_from_file_location("instances", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__doc__.splitlines()[0].endswith("?")
    table = module.main(["--hosts", "6", "--apps", "8", "--hours", "1", "--rate", "0.2",
                         "--policies", "none,thr-mmt", "--figure", str(tmp_path / "f.png")])
    assert "figure:" in capsys.readouterr().out
    rows = table.set_index(["mode", "policy"])
    assert list(rows.index) == [("vm", "none"), ("vm", "thr-mmt"), ("container", "none"),
                                ("container", "thr-mmt"), ("baremetal", "none")]
    for mode in ("vm", "container"):
        kept, packed = rows.loc[(mode, "none")], rows.loc[(mode, "thr-mmt")]
        # worst fit spreads the 8 guests over the 6 hosts; consolidation packs them
        # and switches the rest off: fewer hosts on, less energy
        assert kept["hosts_on"] == 6 and kept["moves"] == 0
        assert packed["moves"] > 0 and packed["hosts_on"] < 6
        assert packed["energy_kwh"] < kept["energy_kwh"]
    # a live migration loses no request; bare metal never moves and keeps every host on
    assert rows.loc[("vm", "thr-mmt"), "lost"] == 0
    assert rows.loc[("baremetal", "none"), "hosts_on"] == 6
    assert (tmp_path / "f.png").stat().st_size > 0
