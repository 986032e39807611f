"""The run-size estimate `fleet-sim validate` prints: events from the scenario's rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios import estimate as est
from fleet_sim.scenarios.build import build

TINY = Path(__file__).parent / "tiny.toml"


def _config(**over) -> cfg.ScenarioConfig:
    data = {"run": {"duration_s": 100.0, "record": ["jobs"]},
            "fleet": {"hosts": [{"type": "h", "count": 1, "cores": 8, "ram_mib": 65536}]},
            "apps": [{"name": "web", "replicas": 3, "ram_mib": 512,
                      "workloads": [{"kind": "jobs", "rate_per_s": 2.0, "work_core_s": 0.1,
                                     "start_s": 20.0}]}]} | over
    return cfg.validate(data, "<test>", Path.cwd())


def test_jobs_are_rate_times_active_time_times_replicas():
    jobs, events = est.count_events(_config())
    assert jobs == 3 * 2.0 * 80.0
    assert events == est.EVENTS_PER_JOB * jobs


def test_a_services_jobs_are_its_one_streams_rate_times_active_time():
    app = {"name": "web", "replicas": 3, "ram_mib": 512,
           "workloads": [{"kind": "jobs", "rate_per_s": 2.0, "work_core_s": 0.1,
                          "start_s": 20.0, "scope": "service"}]}
    assert est.count_events(_config(apps=[app]))[0] == 2.0 * 80.0


def test_rows_follow_what_is_recorded():
    jobs_only = est.estimate(_config())
    assert jobs_only.rows == jobs_only.jobs
    series = est.estimate(_config(run={"duration_s": 100.0, "record": ["hosts", "jobs"]}))
    assert series.rows == pytest.approx(series.jobs + est.ROWS_PER_EVENT * series.events)
    assert series.peak_mib > jobs_only.peak_mib > est.BASE_MIB


def test_the_event_count_is_within_2x_of_what_a_run_simulates():
    config = cfg.validate(cfg.read_toml(TINY), str(TINY), TINY.parent)
    sim = build(config)
    sim.start()
    sim.run()
    simulated = sum(h.cpu.events for h in sim.hosts)
    _, predicted = est.count_events(config)
    assert 0.5 <= predicted / simulated <= 2.0
