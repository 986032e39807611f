"""Recorded columns → tidy tables: last row per (key, t), jobs figures, exact summaries."""

from __future__ import annotations

import itertools
import math
from array import array

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.numerics.timeweighted import mean_ci
from fleet_sim.results import schema
from fleet_sim.results.tables import build_tables, conform, replication_summary

FLEET = pd.DataFrame({"host": ["h0", "h1"], "type": ["t", "t"], "cores": [4.0, 4.0],
                      "speed": [1.0, 2.0], "ram_mib": [1024.0, 1024.0],
                      "monthly_cost_usd": [720.0, 720.0]})


def _hosts(rows):
    cols = ("t", "host", "cpu_used_cores", "cpu_capacity_cores", "power_w", "ram_used_mib")
    return {c: [r[i] for r in rows] if c == "host" else array("d", [r[i] for r in rows])
            for i, c in enumerate(cols)}


def _workloads(rows):
    cols = ("t", "workload", "host", "instance", "demand_cores", "allocated_cores",
            "throttled_cores", "contention_cores")
    return {c: [r[i] for r in rows] for i, c in enumerate(cols)}


def _jobs(rows):
    cols = ("job_id", "workload", "host", "arrival", "start", "finish", "work_core_s",
            "max_cores", "replica", "outcome")
    return {c: [r[i] for r in rows] for i, c in enumerate(cols)}


HOSTS = _hosts([
    # h0: 0 cores until 10, then 2 (recorded twice at t=10: the last one wins), 4 from 30
    (0.0, "h0", 0.0, 4.0, 100.0, 0.0), (0.0, "h1", 0.0, 4.0, 100.0, 0.0),
    (10.0, "h0", 1.0, 4.0, 175.0, 0.0), (10.0, "h0", 2.0, 4.0, 250.0, 0.0),
    (30.0, "h0", 4.0, 4.0, 400.0, 0.0),
])
WORKLOADS = _workloads([
    (0.0, "w", "h0", "w-0", 2.0, 2.0, 0.0, 0.0),
    (20.0, "w", "h0", "w-0", 4.0, 3.0, 0.5, 0.5),
    (20.0, "w", "h1", "w-1", 1.0, 1.0, 0.0, 0.0),
])
JOBS = _jobs([
    (0, "w", "h0", 5.0, 5.0, 9.0, 2.0, 1.0, "w-0", "finished"),  # ideal 2 s, took 4 s: slowdown 2
    (1, "w", "h1", 1.0, 1.0, 2.0, 2.0, 1.0, "w-1", "finished"),  # ideal 1 s (speed 2): slowdown 1
    (2, "w", "h1", 7.0, math.nan, math.nan, 1.0, 1.0, "w-1", "unfinished"),
])


@pytest.fixture
def tables():
    data = {"hosts": HOSTS, "workloads": WORKLOADS, "jobs": JOBS}
    return build_tables(data, ["hosts", "workloads", "jobs", "events"], FLEET, 40.0)


def test_series_keep_only_the_last_row_per_key_and_time(tables):
    h0 = tables["hosts"].query("host == 'h0'")
    assert h0["t"].tolist() == [0.0, 10.0, 30.0]
    assert h0["cpu_used_cores"].tolist() == [0.0, 2.0, 4.0]
    assert h0["cpu_utilization"].tolist() == [0.0, 0.5, 1.0]


def test_series_are_sorted_by_time(tables):
    assert tables["workloads"]["t"].is_monotonic_increasing


def test_jobs_get_response_time_and_slowdown_with_host_speed(tables):
    jobs = tables["jobs"].set_index("job_id")
    assert jobs.loc[0, "response_time_s"] == 4.0
    assert jobs.loc[0, "slowdown"] == 2.0
    assert jobs.loc[1, "slowdown"] == 1.0
    assert math.isnan(jobs.loc[2, "finish"]) and math.isnan(jobs.loc[2, "slowdown"])


def test_every_table_conforms_to_the_schema(tables):
    for name, frame in tables.items():
        assert tuple(frame.columns) == schema.TABLES[name].names, name
        assert frame.dtypes.astype(str).to_dict() == schema.TABLES[name].dtypes(), name


def test_a_recorded_table_without_rows_is_empty_with_schema_columns(tables):
    assert tables["events"].empty
    assert tuple(tables["events"].columns) == schema.EVENTS.names


def test_summary_is_the_exact_time_weighted_figures(tables):
    s = tables["summary"].iloc[0]
    # fleet used: 0 on [0,10), 2 on [10,30), 4 on [30,40) of 8 cores
    assert s["cpu_utilization_mean"] == pytest.approx((2 * 20 + 4 * 10) / (8 * 40))
    assert s["cpu_utilization_p99"] == 0.5
    assert s["host_utilization_max"] == pytest.approx((2 * 20 + 4 * 10) / (4 * 40))
    energy_j = 100 * 40 + (100 * 10 + 250 * 20 + 400 * 10)
    assert s["energy_kwh"] == pytest.approx(energy_j / 3.6e6)
    assert s["cost_usd"] == pytest.approx(2 * 720 * 40 / (30 * 86_400))
    assert s["demand_core_s"] == pytest.approx(2 * 20 + 4 * 20 + 1 * 20)
    assert s["allocated_core_s"] == pytest.approx(2 * 20 + 3 * 20 + 1 * 20)
    assert s["contention_core_s"] == pytest.approx(0.5 * 20)
    assert s["unmet_core_s"] == pytest.approx(20.0)
    assert (s["jobs_arrived"], s["jobs_finished"]) == (3.0, 2.0)
    assert s["response_time_p50_s"] == pytest.approx(2.5)


def test_warmup_trims_the_statistics_window():
    data = {"hosts": HOSTS, "jobs": JOBS}
    out = build_tables(data, ["hosts", "jobs"], FLEET, 40.0, warmup_s=20.0)
    s = out["summary"].iloc[0]
    assert s["window_s"] == 20.0
    assert s["cpu_utilization_mean"] == pytest.approx((2 * 10 + 4 * 10) / (8 * 20))
    assert s["jobs_arrived"] == 0.0
    assert math.isnan(s["response_time_p99_s"])


def test_hosts_without_a_power_model_give_nan_energy():
    hosts = {c: list(v) for c, v in HOSTS.items()}
    hosts["power_w"] = [math.nan] * len(hosts["t"])
    out = build_tables({"hosts": hosts}, ["hosts"], FLEET, 40.0)
    s = out["summary"].iloc[0]
    assert math.isnan(s["energy_kwh"]) and s["cpu_utilization_mean"] > 0


def test_tables_not_recorded_give_nan_figures():
    out = build_tables({}, [], FLEET, 10.0)
    s = out["summary"].iloc[0]
    assert math.isnan(s["cpu_utilization_mean"]) and math.isnan(s["jobs_finished"])
    assert out["workload_summary"].empty


def test_workload_summary_has_one_row_per_workload_name(tables):
    ws = tables["workload_summary"].set_index("workload")
    assert list(ws.index) == ["w"]
    assert ws.loc["w", "allocated_core_s"] == pytest.approx(120.0)
    assert ws.loc["w", "jobs_finished"] == 2.0


def test_conform_names_missing_and_unknown_columns():
    frame = pd.DataFrame({c: [0.0] for c in schema.EVENTS.names if c != "detail"})
    with pytest.raises(ValueError, match=r"missing columns \['detail'\], unknown \['extra'\]"):
        conform(frame.assign(extra=[1]), schema.EVENTS)


def test_a_recorded_table_without_schema_is_refused():
    with pytest.raises(ValueError, match="no schema for recorded table 'mystery'"):
        build_tables({}, ["mystery"], FLEET, 10.0)


def test_replication_summary_uses_mean_ci_and_skips_nan():
    frame = pd.DataFrame({"mode": ["a", "a", "a", "b", "b"],
                          "x": [1.0, 2.0, 4.0, 5.0, math.nan]})
    out = replication_summary(frame, ["mode"]).set_index("mode")
    mean, half = mean_ci([1.0, 2.0, 4.0])
    assert out.loc["a", "mean"] == pytest.approx(mean)
    assert out.loc["a", "ci95"] == pytest.approx(half)
    assert out.loc["b", "n"] == 1 and np.isnan(out.loc["b", "ci95"])


def test_schema_reference_lists_every_table_and_column():
    text = schema.markdown()
    for table in schema.TABLES.values():
        assert f"## `{table.name}`" in text
        assert all(f"`{c.name}`" in text for c in table.columns)


def test_a_run_handed_over_in_many_chunks_gives_the_tables_of_one_chunk(monkeypatch):
    from pathlib import Path

    import fleet_sim.scenarios.build as build_module
    from fleet_sim.scenarios import config as cfg

    tiny = Path(__file__).parents[1] / "scenarios" / "tiny.toml"
    config = cfg.validate(cfg.read_toml(tiny), str(tiny), tiny.parent)

    def tables(chunk_rows: int) -> dict:
        monkeypatch.setattr(build_module, "CHUNK_ROWS", chunk_rows)
        sim = build_module.build(config)
        sim.start()
        sim.run()
        sim.finalize()
        return sim.tables()

    whole, chunked = tables(10**9), tables(50)  # one chunk vs one every step
    for name in ("hosts", "workloads", "events"):
        pd.testing.assert_frame_equal(whole[name], chunked[name])
    by_id = ["workload", "job_id"]
    pd.testing.assert_frame_equal(whole["jobs"].sort_values(by_id, ignore_index=True),
                                  chunked["jobs"].sort_values(by_id, ignore_index=True))
    for name in ("summary", "workload_summary"):
        pd.testing.assert_frame_equal(whole[name], chunked[name], rtol=1e-12)


def test_the_recorder_holds_nothing_once_the_rows_are_taken():
    from fleet_sim.results.recorder import ChangePointRecorder

    rec = ChangePointRecorder(["hosts"])
    row = rec.columns("hosts", ("t", "host"))
    for t in (0.0, 1.0, 2.0, 2.0):
        row(t, "h")
    early = rec.take("hosts", before_t=2.0)
    assert list(early["t"]) == [0.0, 1.0] and rec.rows == 2  # an instant is never split
    assert list(rec.take("hosts")["t"]) == [2.0, 2.0] and rec.rows == 0


_rows = st.lists(st.tuples(st.integers(0, 12), st.sampled_from(["a", "b", "c", None]),
                           st.sampled_from(["x", "y"]), st.floats(0, 4)),
                 min_size=1, max_size=40)


def _frame_of(rows, categorical: bool) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["t", "host", "instance", "v"]).astype({"t": float})
    return frame.astype({"host": "category", "instance": "category"} if categorical
                        else {"host": "str", "instance": "str"})


@settings(max_examples=150, deadline=None)
@given(_rows, st.booleans())
def test_last_row_per_key_and_time_is_drop_duplicates_then_a_stable_sort(rows, categorical):
    from fleet_sim.results.tables import last_per_key_and_t

    frame = _frame_of(rows, categorical)
    want = frame.drop_duplicates(subset=["host", "instance", "t"], keep="last").sort_values(
        "t", kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(last_per_key_and_t(frame, ("host", "instance")), want)


@settings(max_examples=150, deadline=None)
@given(_rows, st.booleans(), st.lists(st.integers(1, 39), max_size=3),
       st.floats(0, 6), st.floats(6, 15))
def test_integrals_fed_in_chunks_are_each_keys_step_integral(rows, categorical, cuts, w0, w1):
    from fleet_sim.results.fold import Integrals

    frame = _frame_of(sorted(rows, key=lambda r: r[0]), categorical)
    folded = Integrals(["host", "instance"], ["v"], (w0, w1))
    edges = sorted({0, len(frame), *(c for c in cuts if c < len(frame))})
    for a, b in itertools.pairwise(edges):
        folded.add(frame.iloc[a:b])
    got = {(r.host, r.instance): (r.v, r.first_t) for r in folded.result().itertuples()}
    keyed = frame.dropna(subset=["host"])  # a row with a missing key is no key's
    want = {}
    for (host, instance), g in keyed.groupby(["host", "instance"], sort=False):
        t, v = g["t"].to_numpy(float), g["v"].to_numpy(float)
        # 0 before the first row, each value until the next row (the last until w1)
        pieces = np.clip(np.append(t[1:], w1), w0, w1) - np.clip(t, w0, w1)
        want[(host, instance)] = (float(np.sum(v * pieces)), g["t"].iloc[0])
    assert got.keys() == want.keys()
    for key, (area, first) in want.items():
        assert got[key][0] == pytest.approx(area, rel=1e-12, abs=1e-12)
        assert got[key][1] == first
