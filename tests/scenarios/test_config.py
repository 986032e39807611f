"""Scenario files: every bad input gives one clear line (file, key path, what is allowed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fleet_sim.errors import ConfigError, ConfigErrors
from fleet_sim.hosting.baremetal import BareMetalParams
from fleet_sim.hosting.containers import ContainerParams
from fleet_sim.hosting.hypervisor import VmParams
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios import keypaths
from fleet_sim.scenarios.runner import EXPERIMENTS_DIR, prepare

TINY = Path(__file__).parent / "tiny.toml"
BASE = TINY.read_text()


def problems(tmp_path: Path, text: str, overrides: list[str] | None = None) -> str:
    """The error message(s) of validating ``text``, with the file shown as F."""
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        scenario, over = prepare(path, overrides=overrides)
        scenario.validate(over)
    return str(info.value).replace(str(path), "F")


BAD_INPUTS = {
    "unknown top-level key": (
        "hosts = 3\n" + BASE,
        "F: hosts: unknown key (allowed: run, fleet, hosting, placement, images, apps, "
        "rollouts, failures, traces, consolidation)"),
    "unknown nested key": (
        BASE.replace("rate_per_s = 2.0", "rate_per_s = 2.0\nrate = 1"),
        "F: apps[0].workloads[0].rate: unknown key (allowed: name, kind, rate_per_s, "
        "work_core_s, max_cores, start_s, end_s, scope)"),
    "wrong type": (
        BASE.replace("duration_s = 300", 'duration_s = "1h"'),
        'F: run.duration_s: expected a number, got "1h" (allowed: a number)'),
    "boolean for an integer": (
        BASE.replace("threads = 4\nram_mib = 1024", "threads = true\nram_mib = 1024"),
        "F: apps[0].threads: expected an integer, got true (allowed: an integer)"),
    "zero capacity": (
        BASE.replace("cores = 4", "cores = 0"),
        "F: fleet.hosts[0].cores: must be > 0, got 0 (allowed: a number > 0)"),
    "negative rate": (
        BASE.replace("rate_per_s = 2.0", "rate_per_s = -1.0"),
        "F: apps[0].workloads[0].rate_per_s: must be > 0, got -1.0 (allowed: a number > 0)"),
    "unknown hosting mode": (
        BASE.replace('mode = "container"', 'mode = "vms"'),
        'F: hosting.mode: "vms" is not allowed (allowed: "baremetal", "vm" or "container")'),
    "unknown workload kind": (
        BASE.replace('kind = "spiky"', 'kind = "spikey"'),
        'F: apps[1].workloads[0].kind: unknown kind "spikey" '
        "(allowed: constant, spiky, diurnal, replay, jobs)"),
    "unknown distribution": (
        BASE.replace('dist = "exponential"', 'dist = "expo"'),
        'F: apps[0].workloads[0].work_core_s.dist: unknown dist "expo" '
        "(allowed: deterministic, exponential, lognormal, uniform)"),
    "VM bigger than any host": (
        BASE.replace('mode = "container"', 'mode = "vm"').replace(
            'name = "batch"', 'name = "batch"\nvcpus = 64'),
        "F: apps[1].vcpus: a vm needing 64 cores and 2563 MiB (overheads included) fits on "
        "no host: needs 64 cores, host small has 4 of 4 free (cores × overcommit ratio 1) "
        "(allowed: at most 4 cores and 15360 MiB per replica under mode vm)"),
    "container with more RAM than any host": (
        BASE.replace("ram_mib = 2048", "ram_mib = 20000"),
        "F: apps[1].ram_mib: a container needing 1 cores and 20008 MiB (overheads included) "
        "fits on no host: needs 20008 MiB, host small has 15360 of 16384 MiB free "
        "(allowed: at most 4 cores and 15360 MiB per replica under mode container)"),
    "negative replicas": (
        BASE.replace("replicas = 2", "replicas = -1"),
        "F: apps[0].replicas: must be >= 0, got -1 (allowed: a number >= 0)"),
    "missing section": (
        BASE.split("[[fleet.hosts]]")[0] + BASE.split("ram_mib = 16384")[1],
        "F: fleet: missing required key (allowed: [[fleet.hosts]] tables: type, count, "
        "cores, …)"),
    "missing workload key": (
        BASE.replace("rate_per_s = 2.0\n", ""),
        "F: apps[0].workloads[0].rate_per_s: missing required key "
        "(allowed: job arrivals per second, a number > 0)"),
    "duplicate app names": (
        BASE.replace('name = "batch"', 'name = "web"'),
        'F: apps[1].name: duplicate name "web" (allowed: unique names)'),
    "unknown placement policy": (
        BASE.replace("worst-fit", "worstfit"),
        'F: placement.policy: "worstfit" is not allowed '
        '(allowed: "first-fit", "best-fit" or "worst-fit")'),
    "unknown table to record": (
        BASE.replace('"events"]', '"evnts"]'),
        'F: run.record[3]: "evnts" is not allowed (allowed: "hosts", "workloads", '
        '"instances", "jobs", "events" or "links")'),
    "warm-up longer than the run": (
        BASE.replace("seed = 3", "seed = 3\nwarmup_s = 400"),
        "F: run.warmup_s: 400 s does not end before duration_s (300 s) "
        "(allowed: 0 <= warmup_s < duration_s)"),
    "half a power model": (
        BASE.replace("ram_mib = 16384", "ram_mib = 16384\npower = { idle_w = 100 }"),
        "F: fleet.hosts[0].power: give either idle_w and peak_w, or table_w "
        "(allowed: {idle_w = 100, peak_w = 400} or {table_w = [11 values in W]})"),
    "TOML syntax": (
        BASE.replace("seed = 3", "seed = = 3"),
        "F: line 5, column 8: invalid TOML: Invalid value "
        "(allowed: TOML 1.0 syntax (https://toml.io))"),
    "a table where a number goes": (
        BASE.replace("cores = 4", "cores = {n = 4}"),
        'F: fleet.hosts[0].cores: expected a number, got {"n": 4} (allowed: a number)'),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_clear_message(tmp_path, case):
    text, message = BAD_INPUTS[case]
    assert problems(tmp_path, text) == message


def test_all_problems_are_reported_at_once(tmp_path):
    text = BASE.replace("cores = 4", "cores = -4").replace("seed = 3", "seed = -1")
    assert problems(tmp_path, text).splitlines() == [
        "F: run.seed: must be >= 0, got -1 (allowed: a number >= 0)",
        "F: fleet.hosts[0].cores: must be > 0, got -4 (allowed: a number > 0)"]


def test_a_missing_file_says_what_is_allowed(tmp_path):
    with pytest.raises(ConfigError) as info:
        cfg.read_toml(tmp_path / "nope.toml")
    assert str(info.value).endswith("(file): file not found (allowed: a path to a .toml "
                                    "scenario file, or a name from `fleet-sim list`)")


BAD_OVERRIDES = {
    "apps.nope.replicas=3": 'F (--set): apps.nope.replicas: no entry named "nope" in apps '
                            "(allowed: web, batch)",
    "apps[5].replicas=3": "F (--set): apps[5].replicas: apps has 2 entries, no [5] "
                          "(allowed: an index below 2)",
    "hosting.mode.x=1": 'F (--set): hosting.mode.x: hosting.mode is a value ("container"), '
                        "not a table (allowed: a path to a value)",
    "run.duration_s=abc": 'F (--set): run.duration_s: expected a number, got "abc" '
                          "(allowed: a number)",
    "hosting.mdoe=vm": "F (--set): hosting.mdoe: unknown key "
                       "(allowed: mode, baremetal, vm, container)",
    "noequals": "--set: noequals: expected key.path=value "
                "(allowed: e.g. run.duration_s=7200 or hosting.mode=vm)",
}


@pytest.mark.parametrize("override", list(BAD_OVERRIDES))
def test_bad_override_names_the_key_path(tmp_path, override):
    assert problems(tmp_path, BASE, [override]) == BAD_OVERRIDES[override]


@pytest.mark.parametrize(("text", "value"), [
    ("7200", 7200), ("0.5", 0.5), ("true", True), ("vm", "vm"), ('"1h"', "1h"),
    ("[1, 2]", [1, 2]), ("{fraction = 0.05}", {"fraction": 0.05}), ("25%", "25%")])
def test_override_values_are_coerced_like_toml(text, value):
    assert keypaths.parse_value(text) == value


def test_sweep_values_split_at_top_level_commas():
    assert keypaths.split_values('vm,container') == ["vm", "container"]
    assert keypaths.split_values('1,[2,3],"a,b"') == [1, [2, 3], "a,b"]


def test_overrides_pick_list_items_by_index_or_name():
    data = cfg.read_toml(TINY)
    out = keypaths.apply_overrides(data, {"apps.batch.replicas": 3, "apps[0].threads": 2,
                                     "fleet.hosts.small.count": 5, "hosting.vm.cpu_ratio": 2.0})
    assert out["apps"][1]["replicas"] == 3 and out["apps"][0]["threads"] == 2
    assert out["fleet"]["hosts"][0]["count"] == 5
    assert out["hosting"]["vm"] == {"cpu_ratio": 2.0}
    assert "replicas" not in data["apps"][1]  # the input is left alone


def test_the_resolved_config_is_complete_and_validates_to_itself():
    config = cfg.load_config(TINY)
    resolved = cfg.resolved(config)
    assert resolved["hosting"]["vm"]["boot_s"]["dist"] == "lognormal"
    assert resolved["apps"][0]["workloads"][0]["max_cores"] == 1.0
    assert cfg.resolved(cfg.validate(resolved)) == resolved


@pytest.mark.parametrize(("model", "params"), [
    (cfg.BareMetalConfig, BareMetalParams), (cfg.VMConfig, VmParams),
    (cfg.ContainerConfig, ContainerParams)])
def test_mode_keys_match_the_hosting_parameters(model, params):
    assert list(model.model_fields) == [f.name for f in dataclasses.fields(params)]


def test_rollout_strategy_parameters_are_checked(tmp_path):
    text = (EXPERIMENTS_DIR / "rollout.toml").read_text().replace(
        'max_surge = "25%"', "max_surge = -3")
    assert problems(tmp_path, text).startswith(
        "F: rollouts[0].strategy_params: not valid for rolling: ")


ROLLOUT = (EXPERIMENTS_DIR / "rollout.toml").read_text()


@pytest.mark.parametrize(("overrides", "message"), [
    (["rollouts.web.app=nope"],
     'F: rollouts[0].app: no deployed app "nope" (allowed: the name of an [[apps]] '
     "entry with replicas >= 1: web, batch)"),
    (["apps.web.replicas=0"], 'F: rollouts[0].app: no deployed app "web"'),
    (["rollouts.web.at_s=5400"],
     "F: rollouts[0].at_s: 5400 s is not before run.duration_s (5400 s) "
     "(allowed: 0 <= at_s < run.duration_s)"),
    (["hosting.mode=baremetal", "rollouts.web.distribution=p2p"],
     "F: rollouts[0].distribution: bare metal installs packages from a central "
     'mirror (allowed: "central" when hosting.mode = "baremetal")'),
    (["hosting.mode=baremetal", "rollouts.web.strategy=blue-green",
      "rollouts.web.strategy_params={}"],
     'F: rollouts[0].strategy: impossible under hosting.mode = "baremetal"'),
    (["rollouts.web.changed=base"],
     'F: rollouts[0].changed: "base" is not allowed (allowed: "top-layer" or '
     '"whole-image")'),
    (["images.cache_mb=100"],
     "F: apps[0].app_layer_mb: its image of 230 MB does not fit a host's layer cache of "
     "100 MB (images.cache_mb)"),
    (["hosting.mode=vm", "apps.batch.vm_image_mb=60000"],
     "F: apps[1].vm_image_mb: its image of 60000 MB does not fit a host's layer "
     "cache of 50000 MB (images.cache_mb)"),
    (["rollouts.web.hurry=1"], "F: rollouts[0].hurry: unknown key (allowed: app, "
     "at_s, strategy, strategy_params, changed, distribution, dependencies, "
     "health_check_s, health_failure_p, max_retries, rollback_failure_fraction)"),
])
def test_bad_rollouts_and_images_name_the_key_and_what_is_allowed(tmp_path, overrides,
                                                                  message):
    assert message in problems(tmp_path, ROLLOUT, overrides)


def test_an_app_is_rolled_out_at_most_once(tmp_path):
    twice = ROLLOUT + '\n[[rollouts]]\napp = "web"\nat_s = 2000\n'
    assert 'F: rollouts[1].app: "web" is rolled out twice (allowed: one rollout per app' in (
        problems(tmp_path, twice))


def test_every_shipped_experiment_validates_and_states_its_question():
    files = sorted(EXPERIMENTS_DIR.glob("*.toml"))
    assert {f.stem for f in files} >= {"demo", "noisy_neighbor", "density", "rollout"}
    for file in files:
        scenario, _ = prepare(file)
        scenario.validate()
        assert cfg.question(file).endswith("?"), file
