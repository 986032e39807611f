"""Plots and HTML reports of fleet_sim results (a face: nothing in the core imports it).

Figures take result tables (pandas DataFrames) and an optional matplotlib ``ax``
and return the Axes; :func:`plotted` gives the numbers behind a figure.
:func:`write_report` turns a stored run or sweep into one self-contained HTML
page plus PNGs (``fleet-sim report DIR``)::

    import fleet_sim as fs
    from fleet_sim import report

    res = fs.load("results/noisy_neighbor")
    report.response_time_cdf(res.jobs, workload="victim.requests")
    report.utilization_distribution(res.hosts, t_end=res.summary.set_index("run_id").duration_s)
    report.write_report("results/noisy_neighbor")

A hosting mode has one colour in every figure (:mod:`fleet_sim.report.style`).
"""

from __future__ import annotations

from fleet_sim.report.figures import (
    density_summary,
    memory_over_time,
    plotted,
    power_over_time,
    response_time_cdf,
    rollout_timeline,
    unmet_cpu,
    utilization_distribution,
    utilization_heatmap,
    workload_cpu,
)
from fleet_sim.report.html import write_report
from fleet_sim.report.style import mode_color, mode_style

__all__ = [
    "density_summary",
    "memory_over_time",
    "mode_color",
    "mode_style",
    "plotted",
    "power_over_time",
    "response_time_cdf",
    "rollout_timeline",
    "unmet_cpu",
    "utilization_distribution",
    "utilization_heatmap",
    "workload_cpu",
    "write_report",
]
