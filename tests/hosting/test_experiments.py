"""The density and noisy-neighbour experiments at tiny sizes (their logic, not their numbers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "experiments"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / name / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_noisy_neighbor_orders_the_modes_as_the_physics_says():
    nn = load("noisy_neighbor")
    df = nn.run(horizon_s=120.0, warmup_s=700.0, seed=0).set_index("variant")
    assert list(df.index) == list(nn.VARIANTS)
    # equal cpu.weight shields the victim completely: the same responses as alone
    assert df.loc["container", "victim_p99_s"] == df.loc["alone", "victim_p99_s"]
    assert df.loc["container", "contention_share"] == 0.0
    # VMs sized by request do not contend, but pay the virtualization overhead
    assert df.loc["vm", "contention_share"] == 0.0
    assert df.loc["vm", "victim_mean_s"] > df.loc["alone", "victim_mean_s"]
    # a quota halves what the neighbours get and is recorded as throttled time
    assert df.loc["container-quota", "neighbour_throttled_s"] > 0
    assert (df.loc["container-quota", "neighbour_core_s"]
            < df.loc["container", "neighbour_core_s"])


def test_density_sizes_every_mode_and_overcommit_needs_fewer_hosts():
    density = load("density")
    df = density.run(n_apps=40, seed=1, hours=0.05, warmup_s=700.0,
                     policies=("first-fit",)).set_index("mode")
    assert set(df.index) == set(density.VARIANTS)
    assert df.loc["vm-overcommit", "hosts"] <= df.loc["vm", "hosts"]
    assert (df["cpu_committed"] <= df.index.map(
        lambda m: density.VARIANTS[m][1].get("cpu_ratio", 1.0)) + 1e-9).all()
    assert (df["ram_reserved"] <= 1.0).all()
    assert (df["monthly_cost_usd"] == df["hosts"] * 450.0).all()
    smaller = df.loc["container", "hosts"] - 1
    if smaller >= 1:  # the sizing is minimal: one host fewer does not fit
        mode, params = density.VARIANTS["container"]
        apps = density.catalog(40, 1)
        assert not density.fits_on(smaller, mode, params, apps, "first-fit", 1)


@pytest.mark.parametrize("name", ["density", "noisy_neighbor"])
def test_each_experiment_states_its_question(name):
    doc = load(name).__doc__
    assert doc.splitlines()[0].endswith("?")
