"""run and sweep: phases, provenance, determinism, resume, failures, replication summary."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from fleet_sim.errors import CapacityError, ConfigError
from fleet_sim.numerics.timeweighted import mean_ci
from fleet_sim.results import schema, store
from fleet_sim.rng import replication_seeds
from fleet_sim.scenarios import runner
from fleet_sim.scenarios.backends import Serial

TINY = Path(__file__).parent / "tiny.toml"
SHORT = {"run.duration_s": 120}


def test_run_returns_schema_conforming_tables_with_run_columns():
    res = runner.run(TINY, set=SHORT, progress=False)
    run_columns = [c.name for c in schema.RUN_COLUMNS]
    for name, frame in res.tables.items():
        assert list(frame.columns) == run_columns + list(schema.TABLES[name].names), name
        assert frame.dtypes.iloc[3:].astype(str).to_dict() == schema.TABLES[name].dtypes()
    assert len(res.jobs) > 100 and res.summary["hosts"].item() == 2.0
    assert set(res.fleet["host"]) == {"small000", "small001"}


def test_the_manifest_carries_the_provenance():
    res = runner.run(TINY, set=SHORT, seed=11, progress=False)
    m = res.manifest
    assert m["status"] == "ok" and m["seed"] == 11 and m["config"]["run"]["seed"] == 11
    assert m["config"]["hosting"]["container"]["cfs"] == "period"  # defaults filled in
    assert m["fleet_sim_version"] and m["wall_time_s"] >= 0
    assert m["tables"]["jobs"] == len(res.jobs)
    assert m["content_hash"].startswith(m["run_id"]) and len(m["content_hash"]) == 64


def test_same_seed_same_tables_other_seed_other_tables():
    a = runner.run(TINY, set=SHORT, progress=False)
    b = runner.run(TINY, set=SHORT, progress=False)
    for name in ("hosts", "workloads", "jobs", "summary"):
        pd.testing.assert_frame_equal(a.table(name), b.table(name))
    c = runner.run(TINY, set=SHORT, seed=4, progress=False)
    assert not a.jobs["arrival"].equals(c.jobs["arrival"])


def test_the_run_id_is_a_content_hash_of_config_and_seed():
    one = runner.plan(TINY, set=SHORT)[0]
    assert runner.plan(TINY, set=SHORT)[0].run_id == one.run_id
    assert runner.plan(TINY, set=SHORT, seed=4)[0].run_id != one.run_id
    assert runner.plan(TINY, set={**SHORT, "apps.web.threads": 2})[0].run_id != one.run_id


def test_shorthands_and_set_mean_the_same_override():
    a = runner.plan(TINY, duration_s=120, hosting__mode="vm")[0]
    b = runner.plan(TINY, set=["run.duration_s=120", "hosting.mode=vm"])[0]
    assert a.run_id == b.run_id


def test_a_sweep_is_the_cartesian_product_times_replications():
    specs = runner.plan(TINY, {"hosting.mode": ["vm", "container"], "apps.web.replicas": [1, 2]},
                        3, set=SHORT)
    assert len(specs) == 12 and len({s.run_id for s in specs}) == 12
    seeds = replication_seeds(3, 3)
    assert [s.seed for s in specs[:3]] == seeds  # each point: the same seeds (paired)
    assert {s.seed for s in specs} == set(seeds)
    assert specs[3].params == {"hosting.mode": "vm", "apps.web.replicas": 2}


def test_an_invalid_sweep_point_stops_the_sweep_before_it_starts(tmp_path):
    with pytest.raises(ConfigError, match=r"hosting\.mode: \"vms\" is not allowed"):
        runner.sweep(TINY, {"hosting.mode": ["vm", "vms"]}, out=tmp_path, backend=Serial())
    assert not list(tmp_path.iterdir())


def test_sweep_resumes_only_what_is_missing(tmp_path):
    params = {"hosting.mode": ["vm", "container"]}
    first = runner.sweep(TINY, params, 2, set=SHORT, out=tmp_path, backend=Serial(),
                         progress=False)
    assert first.info | {"failed": []} == {"planned": 4, "skipped": 0, "ran": 4, "failed": []}
    shutil.rmtree(tmp_path / first.manifests[0]["run_id"])
    again = runner.sweep(TINY, params, 2, set=SHORT, out=tmp_path, backend=Serial(),
                         progress=False)
    assert (again.info["ran"], again.info["skipped"]) == (1, 3)
    pd.testing.assert_frame_equal(first.summary, again.summary)


def _failing_build(replicas: int):
    """runner.build that fails (as a bug or a resource limit would) for one point."""
    real = runner.build

    def build(config, *args, **kwargs):
        if config.apps[0].replicas == replicas:
            raise CapacityError("injected: the fleet ran out of something at run time")
        return real(config, *args, **kwargs)

    return build


def test_a_failing_run_is_recorded_and_the_sweep_carries_on(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "build", _failing_build(3))
    res = runner.sweep(TINY, {"apps.web.replicas": [2, 3]}, set=SHORT, out=tmp_path,
                       backend=Serial(), progress=False)
    runs = res.runs.set_index("apps.web.replicas")
    assert runs.loc[2, "status"] == "ok" and runs.loc[3, "status"] == "failed"
    assert runs.loc[3, "error"].startswith("CapacityError: injected")
    assert len(res.info["failed"]) == 1
    failed = store.read_manifest(tmp_path / runs.loc[3, "run_id"])
    assert "Traceback" in failed["exception"]["traceback"]
    assert set(res.summary["apps.web.replicas"]) == {2}


def test_run_reraises_a_failure_after_recording_it(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "build", _failing_build(3))
    with pytest.raises(CapacityError):
        runner.run(TINY, set={**SHORT, "apps.web.replicas": 3}, out=tmp_path, progress=False)
    (run_dir,) = tmp_path.iterdir()
    assert store.read_manifest(run_dir)["status"] == "failed"
    res = runner.run(TINY, set={**SHORT, "apps.web.replicas": 3}, reraise=False,
                     progress=False)
    assert res.manifest["exception"]["type"] == "CapacityError"


def test_a_fleet_too_small_for_all_replicas_is_caught_before_running():
    # 40 one-core replicas cannot all be placed on 8 cores, although each fits a host
    with pytest.raises(ConfigError) as e:
        runner.run(TINY, set={**SHORT, "apps.web.replicas": 40}, progress=False)
    text = str(e.value)
    assert "apps[0].replicas: the replicas do not all fit the fleet under mode" in text
    assert "where the empty fleet offers 8 cores" in text
    assert "fleet.hosts.small.count" in text


def test_replication_zero_uses_the_base_seed_so_a_sweep_repeats_a_run(tmp_path):
    single = runner.run(TINY, set=SHORT, progress=False)
    swept = runner.sweep(TINY, replications=2, set=SHORT, out=tmp_path, backend=Serial(),
                         progress=False)
    seeds = dict(zip(swept.runs["replication"], swept.runs["seed"], strict=True))
    assert seeds[0] == single.manifest["seed"] != seeds[1]
    first = swept.summary.query("replication == 0").drop(columns=["run_id", "seed",
                                                                    "replication"])
    pd.testing.assert_frame_equal(
        first.reset_index(drop=True),
        single.summary.drop(columns=["run_id", "seed", "replication"]))


def test_an_app_with_zero_replicas_is_kept_in_the_file_but_not_deployed():
    res = runner.run(TINY, set={**SHORT, "apps.batch.replicas": 0}, progress=False)
    assert set(res.workload_summary["workload"]) == {"web-0.requests", "web-1.requests"}
    admitted = res.events.loc[res.events["kind"] == "admit", "entity"]
    assert sorted(admitted) == ["web-0", "web-1"]


def test_admit_events_say_what_was_committed_on_the_host():
    res = runner.run(TINY, set={**SHORT, "hosting.mode": "vm"}, progress=False)
    admits = res.events[res.events["kind"] == "admit"].set_index("entity")
    vm, guest = admits.loc["batch-vm"], admits.loc["batch"]
    assert vm["host"].startswith("small") and vm["kernel"] == vm["host"]
    assert (vm["cpu_cores"], vm["ram_mib"]) == (1, 2563)  # 1 vCPU, RAM + overheads
    assert (guest["kernel"], guest["cpu_cores"], guest["ram_mib"]) == ("batch-vm", 1, 2048)


def test_loaded_tables_carry_the_swept_parameters(tmp_path):
    runner.sweep(TINY, {"hosting.mode": ["vm", "container"]}, 2, set=SHORT, out=tmp_path,
                 backend=Serial(), progress=False)
    res = store.load(tmp_path)
    assert set(res.jobs["hosting.mode"]) == {"vm", "container"}
    assert res.summary.groupby("hosting.mode")["replication"].apply(sorted).tolist() == [
        [0, 1], [0, 1]]


def test_summary_across_replications_is_mean_and_95ci(tmp_path):
    res = runner.sweep(TINY, {}, 3, set=SHORT, out=tmp_path, backend=Serial(),
                       progress=False)
    stats = res.summarize().set_index("metric")
    mean, half = mean_ci(res.summary["response_time_mean_s"].to_numpy())
    assert stats.loc["response_time_mean_s", "mean"] == pytest.approx(mean)
    assert stats.loc["response_time_mean_s", "ci95"] == pytest.approx(half)
    assert stats.loc["response_time_mean_s", "n"] == 3
    per_workload = res.summarize("workload_summary")
    assert set(per_workload["workload"]) == {"web-0.requests", "web-1.requests", "batch.spiky"}


def test_a_rollout_scenario_gives_rollout_tables():
    res = runner.run(runner.EXPERIMENTS_DIR / "rollout.toml", progress=False,
                     set={"fleet.hosts.host.count": 8, "apps.web.replicas": 8,
                          "apps.batch.replicas": 8, "run.duration_s": 2000})
    summary = res.rollout_summary.iloc[0]
    assert summary["new_healthy"] + summary["new_failed"] == 8
    assert len(res.timeline) >= 16 and set(res.tables) >= {
        "timeline", "links", "capacity", "jobs", "summary"}


def test_editing_a_replayed_trace_changes_the_run_id(tmp_path):
    from fleet_sim.scenarios.runner import RunSpec

    trace = tmp_path / "cpu.txt"
    trace.write_text("10\n20\n")
    config = {"run": {"seed": 1},
              "apps": [{"name": "a", "workloads": [{"kind": "replay", "trace": "cpu.txt"}]}]}
    before = RunSpec(config, "x.toml", str(tmp_path)).run_id
    assert RunSpec(config, "x.toml", str(tmp_path)).run_id == before
    trace.write_text("10\n30\n")
    assert RunSpec(config, "x.toml", str(tmp_path)).run_id != before
