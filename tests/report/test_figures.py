"""Every figure is drawn from real results: the numbers behind a plot match the tables.

Two kinds of input: small hand-made frames in the schema (exact expected values),
and tables of real runs of the engine (hosts with a job workload and a spiky
neighbour, in three CPU-tree shapes labelled as hosting modes), whose plotted
numbers are checked against the run's own ``summary`` and ``workload_summary``.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import simpy
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

from fleet_sim.model.cputree import CpuNode
from fleet_sim.model.demand import DemandWorkload, Spiky
from fleet_sim.model.distributions import Exponential
from fleet_sim.model.fleet import Fleet
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import JobWorkload, PoissonJobs
from fleet_sim.numerics import timeweighted
from fleet_sim.numerics.power import LinearPower
from fleet_sim.report import figures as fg
from fleet_sim.report import style
from fleet_sim.report.numbers import fmt
from fleet_sim.results import store
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.results.schema import CAPACITY, HOSTS, JOBS, WORKLOADS
from fleet_sim.results.tables import build_tables, conform, sum_series
from fleet_sim.rng import Streams
from fleet_sim.units import J_PER_KWH

MODES = ("baremetal", "vm", "container")
DURATION_S = 300.0
RECORDED = ("hosts", "workloads", "jobs", "events")


# ---------------------------------------------------------------- engine runs
def engine_tables(mode: str, seed: int = 1, duration_s: float = DURATION_S,
                  n_hosts: int = 3) -> dict[str, pd.DataFrame]:
    """Tables of one real engine run: per host a web job workload and a spiky batch
    neighbour, hung in the CPU tree the way ``mode`` would (a stand-in for the
    hosting modes: CFS thread weights, vCPU caps, or cgroup weights with a quota)."""
    env = simpy.Environment()
    rec = ChangePointRecorder(RECORDED)
    streams = Streams(seed)
    fleet = Fleet(env)
    for h in range(n_hosts):
        host = fleet.add(Host(env, f"std{h:03d}", cores=8, ram_mib=32_768,
                              power=LinearPower(100.0, 400.0), recorder=rec))
        host.set_ram_used(6_144.0)
        web_parent = batch_parent = None
        if mode == "vm":
            web_parent = host.attach(CpuNode(f"{host.name}.vm-web", cap=4.0))
            batch_parent = host.attach(CpuNode(f"{host.name}.vm-batch", cap=4.0))
        elif mode == "container":
            web_parent = host.attach(CpuNode(f"{host.name}.ct-web", weight=100.0))
            batch_parent = host.attach(CpuNode(f"{host.name}.ct-batch", weight=100.0, cap=6.0))
        web = JobWorkload(host, "web", parent=web_parent, instance=f"{host.name}.web",
                          keep_jobs=False)
        web.add_feed(PoissonJobs(6.0, Exponential(0.4), 1.0,
                                 streams.get(f"workload.{host.name}.web.arrivals"),
                                 streams.get(f"workload.{host.name}.web.sizes")))
        batch = DemandWorkload(host, "batch", Spiky(1.0, 1 / 60, Exponential(30.0), 12.0,
                                                    streams.get(f"workload.{host.name}.spikes")),
                               parent=batch_parent, instance=f"{host.name}.batch")
        if mode == "baremetal":
            batch.weight_of = lambda cores: float(min(16, max(1, math.ceil(cores))))
        batch.start()

        def more_ram(host: Host = host, h: int = h):
            yield env.timeout(duration_s * (0.3 + 0.1 * h))
            host.set_ram_used(12_288.0)

        env.process(more_ram())
    env.run(until=duration_s)
    fleet.finalize(duration_s)
    inventory = pd.DataFrame({"host": [h.name for h in fleet.hosts], "type": "std",
                              "cores": 8.0, "speed": 1.0, "ram_mib": 32_768.0,
                              "monthly_cost_usd": 450.0})
    return build_tables(rec.data, RECORDED, inventory, duration_s,
                        power={h.name: h.power for h in fleet.hosts})


def as_runs(per_run: list[tuple[dict, dict[str, pd.DataFrame]]]) -> dict[str, pd.DataFrame]:
    """Concatenate runs as ``fleet_sim.load`` does: run columns and swept params in front."""
    params = sorted({p for m, _ in per_run for p in m.get("params", {})})
    names = per_run[0][1].keys()
    return {name: pd.concat([store.with_run_columns(tables[name], m, params)
                             for m, tables in per_run], ignore_index=True)
            for name in names}


@pytest.fixture(scope="module")
def sweep() -> dict[str, pd.DataFrame]:
    """A sweep of three modes × two replications, as loaded from a store."""
    runs = []
    for mode in MODES:
        for rep, seed in enumerate((11, 12)):
            manifest = {"run_id": f"{mode}-{rep}", "seed": seed, "replication": rep,
                        "params": {"hosting.mode": mode}}
            runs.append((manifest, engine_tables(mode, seed)))
    return as_runs(runs)


@pytest.fixture(scope="module")
def one_run(sweep) -> dict[str, pd.DataFrame]:
    """The first replication of the container mode."""
    return {name: frame[frame["run_id"] == "container-0"].reset_index(drop=True)
            for name, frame in sweep.items()}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def axes() -> plt.Axes:
    return Figure(figsize=(8, 4.5), layout="constrained").add_subplot()


def rendered(ax: plt.Axes) -> plt.Axes:
    """Draw the figure to PNG bytes (catches errors that only appear on drawing)."""
    import io

    ax.figure.savefig(io.BytesIO(), format="png", dpi=50)
    return ax


def line_by_label(ax: plt.Axes, prefix: str):
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith(prefix)]
    assert len(lines) == 1, [ln.get_label() for ln in ax.get_lines()]
    return lines[0]


# ---------------------------------------------------------------- synthetic frames
def hosts_frame(rows: list[tuple]) -> pd.DataFrame:
    """hosts rows (t, host, used, capacity, power_w, ram_mib)."""
    frame = pd.DataFrame(rows, columns=["t", "host", "cpu_used_cores", "cpu_capacity_cores",
                                        "power_w", "ram_used_mib"])
    frame["cpu_utilization"] = frame["cpu_used_cores"] / frame["cpu_capacity_cores"]
    return conform(frame, HOSTS)


def test_heatmap_cells_are_exact_bin_means():
    hosts = hosts_frame([(0.0, "h2", 0.0, 4.0, 100, 0), (5.0, "h2", 4.0, 4.0, 400, 0),
                         (0.0, "h10", 2.0, 4.0, 250, 0), (12.0, "h10", 1.0, 4.0, 175, 0)])
    ax = rendered(fg.utilization_heatmap(hosts, t_end=20.0, bins=2, ax=axes()))
    z = ax.get_images()[0].get_array()
    # natural order: h2 before h10
    np.testing.assert_allclose(z[0], [0.5, 1.0])
    np.testing.assert_allclose(z[1], [0.5, (2 * 0.5 + 8 * 0.25) / 10])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["h2", "h10"]
    data = fg.plotted(ax)
    assert list(data["host"]) == ["h2", "h2", "h10", "h10"]


def test_heatmap_leaves_time_before_a_hosts_first_record_empty():
    hosts = hosts_frame([(0.0, "a", 1.0, 2.0, 0, 0), (15.0, "b", 2.0, 2.0, 0, 0)])
    ax = fg.utilization_heatmap(hosts, t_end=20.0, bins=2, ax=axes())
    z = np.ma.filled(ax.get_images()[0].get_array().astype(float), np.nan)
    assert np.isnan(z[1][0]) and z[1][1] == 1.0


def test_heatmap_refuses_a_table_of_many_runs(sweep):
    with pytest.raises(ValueError, match="holds 6"):
        fg.utilization_heatmap(sweep["hosts"], ax=axes())


def test_distribution_pools_host_time():
    hosts = hosts_frame([(0.0, "a", 0.0, 1.0, 0, 0), (0.0, "b", 1.0, 1.0, 0, 0),
                         (5.0, "b", 0.5, 1.0, 0, 0)])
    ax = fg.utilization_distribution(hosts, t_end=10.0, ax=axes())
    line = ax.get_lines()[0]
    x, q = line.get_xdata(), line.get_ydata()
    # host-time: 10 s at 0, 5 s at 0.5, 5 s at 1
    assert x[q == 0.5][0] == 0.0 and x[q == 0.75][0] == 0.5 and x[-1] == 1.0
    assert fg.plotted(ax)["mean"].iloc[0] == pytest.approx(0.375)


def workloads_frame(rows: list[tuple]) -> pd.DataFrame:
    """(t, instance, demand, allocated, throttled, contention) of workload 'w' on host h."""
    frame = pd.DataFrame(rows, columns=["t", "instance", "demand_cores", "allocated_cores",
                                        "throttled_cores", "contention_cores"])
    return conform(frame.assign(workload="w", host="h"), WORKLOADS)


def test_workload_cpu_stacks_allocated_contention_throttled_under_the_demand():
    wl = workloads_frame([(0.0, "i1", 3.0, 1.0, 1.0, 1.0), (0.0, "i2", 1.0, 1.0, 0.0, 0.0),
                          (4.0, "i1", 0.0, 0.0, 0.0, 0.0)])
    ax = rendered(fg.workload_cpu(wl, t_end=10.0, ax=axes()))
    fills = ax.collections
    assert len(fills) == 3
    tops = [poly.get_paths()[0].vertices[:, 1].max() for poly in fills]
    assert tops == [2.0, 3.0, 4.0]  # allocated, + contention, + throttled
    demand = line_by_label(ax, "demand")
    np.testing.assert_allclose(demand.get_ydata(), [4.0, 1.0, 1.0])
    data = fg.plotted(ax)
    np.testing.assert_allclose(data["allocated_cores"], [2.0, 1.0])
    # legend totals are the exact integrals (core-s)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "allocated 14 (63.6 %)" in labels and "demand 22" in labels
    assert ax.get_legend().get_title().get_text() == "core-s in the window"


def test_workload_cpu_asks_which_workload_when_there_are_several(one_run):
    with pytest.raises(ValueError, match="pick one of: batch, web"):
        fg.workload_cpu(one_run["workloads"], ax=axes())


def test_response_time_cdf_counts_unfinished_and_failed_jobs():
    jobs = pd.DataFrame({"job_id": range(6), "workload": "w", "host": "h", "replica": "w",
                         "arrival": 0.0, "start": 0.0,
                         "finish": [1.0, 2.0, 4.0, 8.0, np.nan, np.nan], "work_core_s": 1.0,
                         "max_cores": 1.0,
                         "outcome": ["finished"] * 4 + ["unfinished", "failed"]})
    jobs["response_time_s"] = jobs["finish"] - jobs["arrival"]
    jobs["slowdown"] = jobs["response_time_s"]
    jobs = conform(jobs, JOBS).assign(mode="vm")
    ax = rendered(fg.response_time_cdf(jobs, ax=axes()))
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [1, 2, 4, 8])
    np.testing.assert_allclose(line.get_ydata(), [1 / 6, 2 / 6, 3 / 6, 4 / 6])
    assert ax.get_xscale() == "log"
    assert "(n=6, 1 failed, 1 unfinished)" in line.get_label()
    assert line.get_color() == style.mode_color("vm")


def test_density_summary_bars_are_means_with_confidence_intervals():
    summary = pd.DataFrame({"mode": ["vm", "vm", "vm", "container"],
                            "apps_per_host": [10.0, 12.0, 11.0, 30.0],
                            "hosts_needed": [10.0, 9.0, 9.0, 4.0],
                            "cost_usd": [4500.0, 4050.0, 4050.0, 1800.0]})
    axs = fg.density_summary(summary)
    assert [a.get_title() for a in axs] == ["Apps per host", "Hosts needed", "Cost"]
    assert [a.get_ylabel() for a in axs] == ["apps per host", "hosts", "$ over the run"]
    bars = [p for p in axs[0].patches]
    assert [b.get_height() for b in bars] == [11.0, 30.0]
    assert [to_hex(b.get_facecolor()) for b in bars] == [style.mode_color("vm"),
                                                         style.mode_color("container")]
    data = fg.plotted(axs[0])
    row = data[(data.metric == "apps_per_host") & (data.group == "vm")].iloc[0]
    assert (row["mean"], row["ci95"]) == timeweighted.mean_ci([10.0, 12.0, 11.0])
    assert math.isnan(data[(data.metric == "apps_per_host") & (data.group == "container")]
                      ["ci95"].iloc[0])
    rendered(axs[0])


def test_rollout_timeline_draws_old_and_new_serving_instances():
    cap = pd.DataFrame({"t": [0.0, 10.0, 12.0, 30.0], "app": "web",
                        "old_healthy": [4, 3, 2, 0], "new_healthy": [0, 0, 1, 4]})
    cap = conform(cap, CAPACITY)
    # the bare-metal rollout began at 500 s: drawn from its start too
    frame = pd.concat([cap.assign(mode="container"),
                       cap.assign(mode="baremetal", t=500 + cap["t"] * 100)],
                      ignore_index=True)
    ax = rendered(fg.rollout_timeline(frame, n_replicas=4, ax=axes()))
    new = line_by_label(ax, "container new")
    old = line_by_label(ax, "container old")
    np.testing.assert_allclose(new.get_ydata(), [0, 0, 1, 4, 4])
    np.testing.assert_allclose(old.get_ydata(), [4, 3, 2, 0, 0])
    assert new.get_color() == style.mode_color("container") and old.get_linestyle() == "--"
    assert "all 4 by 30 s" in new.get_label()
    # both groups run to the longest rollout (3000 s, shown in minutes)
    assert new.get_xdata()[-1] == pytest.approx(50.0)
    assert ax.get_xlabel().endswith("(min)")


def test_groups_by_swept_hosting_mode_or_any_column():
    hosts = hosts_frame([(0.0, "a", 1.0, 2.0, 100, 512)])
    two = pd.concat([hosts.assign(**{"hosting.mode": m}) for m in ("container", "baremetal")])
    ax = fg.power_over_time(two, t_end=5.0, ax=axes())
    assert [ln.get_label().split(":")[0] for ln in ax.get_lines()] == ["baremetal", "container"]
    ax = fg.memory_over_time(pd.concat([hosts.assign(size=s) for s in (10, 2)]), by="size",
                             t_end=5.0, ax=axes())
    assert [ln.get_label().split(":")[0] for ln in ax.get_lines()] == ["size=2", "size=10"]
    with pytest.raises(KeyError, match="no column 'nope'"):
        fg.memory_over_time(hosts, by="nope", ax=axes())


def test_plotted_refuses_foreign_axes():
    with pytest.raises(KeyError):
        fg.plotted(axes())


# ---------------------------------------------------------------- style
def test_one_colour_per_mode_and_shades_of_it_for_variants():
    assert len({style.mode_color(m) for m in MODES}) == 3
    assert style.mode_color("bare-metal") == style.mode_color("baremetal")
    for variant, base in (("vm-overcommit", "vm"), ("container-quota", "container")):
        v, b = np.array(to_rgb(style.mode_color(variant))), np.array(to_rgb(style.mode_color(base)))
        assert style.mode_color(variant) != style.mode_color(base)
        assert style.base_mode(variant) == base
        # a shade: the same hue, mixed with black or white
        assert np.allclose(v / v.max(), b / b.max(), atol=0.02) or np.allclose(
            (1 - v) / (1 - v).max(), (1 - b) / (1 - b).max(), atol=0.02)
    assert style.mode_style("vm-overcommit") == style.mode_style("vm-overcommit")
    assert style.mode_order(["container", "vm-pinned", "vm", "baremetal"]) == [
        "baremetal", "vm", "vm-pinned", "container"]


def test_a_mode_has_the_same_colour_in_every_figure(sweep):
    colours = {}
    for ax in (fg.utilization_distribution(sweep["hosts"], ax=axes()),
               fg.response_time_cdf(sweep["jobs"], ax=axes()),
               fg.power_over_time(sweep["hosts"], ax=axes()),
               fg.memory_over_time(sweep["hosts"], ax=axes())):
        for line in ax.get_lines():
            mode = line.get_label().split(":")[0]
            if mode in MODES:
                colours.setdefault(mode, set()).add(to_hex(line.get_color()))
    assert {m: len(c) for m, c in colours.items()} == dict.fromkeys(MODES, 1)
    assert {m: c.pop() for m, c in colours.items()} == {m: style.mode_color(m) for m in MODES}


# ---------------------------------------------------------------- real runs
def test_real_heatmap_averages_to_each_hosts_mean_utilization(one_run):
    hosts = one_run["hosts"]
    ax = rendered(fg.utilization_heatmap(hosts, t_end=DURATION_S, bins=60, ax=axes()))
    z = ax.get_images()[0].get_array()
    for row, (_, g) in zip(z, sorted(hosts.groupby("host")), strict=True):
        exact = timeweighted.mean(g["t"], g["cpu_utilization"], DURATION_S)
        assert row.mean() == pytest.approx(exact, rel=1e-9)
    assert z.mean(axis=1).max() == pytest.approx(
        one_run["summary"]["host_utilization_max"].iloc[0], rel=1e-9)
    assert 0.1 < np.nanmax(z) <= 1.0


def test_real_distribution_mean_is_the_fleets_mean_utilization(sweep):
    ax = rendered(fg.utilization_distribution(sweep["hosts"], t_end=DURATION_S, ax=axes()))
    data = fg.plotted(ax)
    summary = sweep["summary"]
    for mode in MODES:
        expected = summary.loc[summary["hosting.mode"] == mode, "cpu_utilization_mean"].mean()
        got = data.loc[data["group"] == mode, "mean"].iloc[0]
        assert got == pytest.approx(expected, rel=1e-9)  # equal hosts, equal weights


def test_real_workload_cpu_totals_match_the_workload_summary(sweep):
    for mode in MODES:
        run = sweep["workloads"][sweep["workloads"]["run_id"] == f"{mode}-0"]
        ws = sweep["workload_summary"]
        ws = ws[(ws["run_id"] == f"{mode}-0") & (ws["workload"] == "batch")].iloc[0]
        ax = rendered(fg.workload_cpu(run, "batch", t_end=DURATION_S, ax=axes()))
        data = fg.plotted(ax)
        t = data["t"].to_numpy()
        for column in ("demand", "allocated", "throttled", "contention"):
            total = timeweighted.integral(t, data[f"{column}_cores"], DURATION_S, t[0])
            assert total == pytest.approx(ws[f"{column}_core_s"], rel=1e-9), (mode, column)
        fill = ax.collections[0]
        assert to_hex(fill.get_facecolor()[0]) == style.mode_color(mode)
        # what is drawn is what the plotted data says (the stack's top is the demand)
        demand = line_by_label(ax, "demand").get_ydata()[:-1]
        stacked = data[["allocated_cores", "contention_cores", "throttled_cores"]].sum(axis=1)
        np.testing.assert_allclose(stacked, demand, atol=1e-9)
    # the physics shows through: only the capped modes throttle the batch neighbour
    ws = sweep["workload_summary"]
    bm = ws[(ws["hosting.mode"] == "baremetal") & (ws["workload"] == "batch")]
    vm = ws[(ws["hosting.mode"] == "vm") & (ws["workload"] == "batch")]
    assert (bm["throttled_core_s"] == 0).all() and (vm["throttled_core_s"] > 0).all()


def test_real_workload_cpu_of_a_busy_series_draws_exact_bin_means(one_run):
    rows = one_run["workloads"]
    web = rows[rows["workload"] == "web"]
    assert len(web) > fg.MAX_STEPS
    ax = rendered(fg.workload_cpu(rows, "web", t_end=DURATION_S, ax=axes()))
    data = fg.plotted(ax)
    assert data["binned"].all() and len(data) == fg.TIME_BINS
    assert "means over" in ax.get_ylabel()
    ws = one_run["workload_summary"].set_index("workload").loc["web"]
    t = data["t"].to_numpy()
    for column in ("demand", "allocated", "throttled", "contention"):
        # bins start at the first record and keep every integral
        total = timeweighted.integral(t, data[f"{column}_cores"], DURATION_S)
        assert total == pytest.approx(ws[f"{column}_core_s"], rel=1e-9, abs=1e-9), column
    # one bin, recomputed from the table
    t_all, demand = sum_series(web.sort_values("t", kind="stable"),
                               ("workload", "host", "instance"), "demand_cores")
    k, width = 17, t[1] - t[0]
    exact = timeweighted.integral(t_all, demand, t[k] + width, t[k]) / width
    assert data["demand_cores"].iloc[k] == pytest.approx(exact, rel=1e-9)


def test_real_response_time_percentiles_match_the_summary(sweep):
    ax = rendered(fg.response_time_cdf(sweep["jobs"], ax=axes()))
    data = fg.plotted(ax)
    jobs = sweep["jobs"]
    for mode in MODES:
        rows = data[data["group"] == mode]
        resp = jobs.loc[jobs["hosting.mode"] == mode, "response_time_s"].dropna()
        assert rows["p99_s"].iloc[0] == pytest.approx(np.quantile(resp, 0.99))
        assert rows["jobs"].iloc[0] == (jobs["hosting.mode"] == mode).sum()
        # every drawn point is a point of the empirical CDF
        ordered = np.sort(resp.to_numpy())
        ranks = np.searchsorted(ordered, rows["response_time_s"], side="right")
        np.testing.assert_allclose(rows["fraction"], ranks / rows["jobs"].iloc[0])
    one = sweep["summary"][sweep["summary"]["run_id"] == "vm-0"].iloc[0]
    ax = fg.response_time_cdf(sweep["jobs"][sweep["jobs"]["run_id"] == "vm-0"], ax=axes())
    assert fg.plotted(ax)["p50_s"].iloc[0] == pytest.approx(one["response_time_p50_s"])
    assert fg.plotted(ax)["p99_s"].iloc[0] == pytest.approx(one["response_time_p99_s"])


def test_real_power_and_energy_match_the_summary(sweep):
    summary = sweep["summary"]
    warmup = summary.set_index("run_id")["duration_s"] - summary.set_index("run_id")["window_s"]
    ax = rendered(fg.power_over_time(sweep["hosts"], t_end=DURATION_S, t_start=warmup,
                                     ax=axes()))
    data = fg.plotted(ax)
    assert "first replication" in ax.get_title()
    for mode in MODES:
        # the legend's energy is the summary's energy_kwh (statistics window), mean over runs
        of_mode = summary.loc[summary["run_id"].str.startswith(f"{mode}-"), "energy_kwh"]
        rows = data[data["group"] == mode]
        assert rows["energy_kwh"].iloc[0] == pytest.approx(of_mode.mean(), rel=1e-9)
        assert rows["runs"].iloc[0] == len(of_mode) > 1
        line = line_by_label(ax, mode)
        assert f"{fmt(of_mode.mean())} kWh in the window" in line.get_label()
        expected = summary.loc[summary["run_id"] == f"{mode}-0", "energy_kwh"].iloc[0]
        assert (summary.loc[summary["run_id"] == f"{mode}-0", "window_s"].iloc[0]
                == DURATION_S)  # no warm-up here: the drawn run's energy is its summary's
        # thousands of change points: drawn as exact time-weighted means over bins
        hosts = sweep["hosts"][sweep["hosts"]["run_id"] == f"{mode}-0"]
        t, power = sum_series(hosts, ("host",), "power_w")
        assert rows["binned"].all() and len(rows) == fg.TIME_BINS
        edges = np.append(rows["t"].to_numpy(), DURATION_S)
        for k in (0, 7, fg.TIME_BINS - 1):
            exact = timeweighted.integral(t, power, edges[k + 1], edges[k]) / (
                edges[k + 1] - edges[k])
            assert rows["power_w"].iloc[k] == pytest.approx(exact, rel=1e-9)
        np.testing.assert_allclose(line.get_ydata()[:-1] * 1000, rows["power_w"])
        # bins keep the integral: the drawn line holds the same energy
        drawn = timeweighted.integral(rows["t"], rows["power_w"], DURATION_S) / J_PER_KWH
        assert drawn == pytest.approx(expected, rel=1e-9)
    assert "means over 1.25 s bins" in ax.get_title()


def test_power_not_recorded_is_said_not_drawn():
    hosts = hosts_frame([(0.0, "a", 1.0, 2.0, np.nan, 0)]).assign(mode="vm")
    ax = fg.power_over_time(hosts, t_end=4.0, ax=axes())
    assert [ln.get_label() for ln in ax.get_lines()] == [
        "vm: power_w not recorded for every host"]


def test_power_of_a_short_series_is_drawn_exactly():
    hosts = hosts_frame([(0.0, "a", 1.0, 2.0, 250, 0), (0.0, "b", 0.0, 2.0, 100, 0),
                         (2.0, "a", 2.0, 2.0, 400, 0), (3.0, "b", 0.0, 2.0, 100, 0)])
    ax = fg.power_over_time(hosts, t_end=4.0, ax=axes())
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [0.35, 0.5, 0.5])  # kW; held until t_end
    kwh = (350 * 2 + 500 * 2) / J_PER_KWH  # 0.000472…
    assert line.get_label() == f"{fmt(kwh)} kWh in the window"
    assert fg.plotted(ax)["mean_power_w"].iloc[0] == pytest.approx(425.0)


def test_real_memory_sums_ram_over_hosts(one_run):
    ax = rendered(fg.memory_over_time(one_run["hosts"], fleet=one_run["fleet"],
                                      t_end=DURATION_S, ax=axes()))
    line = ax.get_lines()[0]
    # 3 hosts × 6 GiB, then each host steps to 12 GiB in turn
    np.testing.assert_allclose(line.get_ydata(), [18, 24, 30, 36, 36])
    assert ax.get_ylabel() == "RAM in use (GiB)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["container: peak 36 GiB", "RAM capacity 96 GiB"]


def test_real_unmet_cpu_bars_match_the_workload_summary(sweep):
    ax = rendered(fg.unmet_cpu(sweep["workload_summary"], "batch", ax=axes()))
    data = fg.plotted(ax).set_index("group")
    ws = sweep["workload_summary"]
    ws = ws[ws["workload"] == "batch"]
    for mode in MODES:
        runs = ws[ws["hosting.mode"] == mode]
        assert data.loc[mode, "contention_core_s"] == pytest.approx(
            runs["contention_core_s"].mean())
        assert data.loc[mode, "runs"] == 2
    heights = [p.get_height() for p in ax.patches]
    assert heights[:3] == pytest.approx(list(data["contention_core_s"]))
