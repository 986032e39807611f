"""The answer in numbers: how the request-serving workloads fare in each group of runs.

:func:`headline` takes the ``jobs`` table (every job workload, i.e. request
serving) over each run's statistics window ``[duration_s − window_s,
duration_s]`` and gives, per workload (replicas together: ``web-0.requests`` …
→ ``web.requests``) and group (:mod:`fleet_sim.report.groups`), the p99
response time and the mean slowdown with 95 % Student-t confidence intervals
across replications, and the *paired* difference from a reference group: runs
with the same seed share arrivals and spikes, so the difference is taken per
seed and its interval is that of the per-seed differences. The reference is the
no-neighbour baseline when there is one, else the first group.
:func:`differences` gives the paired difference between every two groups.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from fleet_sim.numerics.timeweighted import mean_ci
from fleet_sim.report.numbers import ci_cell, group_table
from fleet_sim.report.groups import GROUP, Groups, groups, with_groups
from fleet_sim.results.store import Results

#: the figures of the headline: (column, per-run statistic of the window's jobs, unit)
METRICS = {"p99_s": "99th percentile response time (s)", "slowdown": "mean slowdown"}
#: the summary's figures a consolidation study is about, the first part of its answer
ENERGY = ("energy_kwh", "hosts_on_mean", "migrations", "host_shutdowns", "slatah", "pdm", "slav")
_REPLICA = re.compile(r"-\d+(?=(?:-vm)?(?:@[^.]*)?\.)")


def question(results: Results) -> str:
    """The question the runs' scenario file answers (its first comment line; "" if
    the file is not at hand)."""
    from fleet_sim.scenarios.config import question as of_file

    for source in dict.fromkeys(str(m.get("source", "")) for m in results.manifests):
        if source and Path(source).is_file():
            return of_file(source)
    return ""


def app_workload(name: str) -> str:
    """The workload of an app, all replicas together: ``web-3.requests`` →
    ``web.requests``, ``web-3-vm.guest-os`` → ``web-vm.guest-os`` (its VMs' guest OS),
    ``web-3@v2.requests`` → ``web@v2.requests`` (a rollout's new version)."""
    return _REPLICA.sub("", str(name), count=1)


def per_run(results: Results, grouping: Groups | None = None) -> pd.DataFrame:
    """One row per (run, job workload): its group, seed, jobs in the window, p99 response
    time (s, finished jobs that arrived in the window) and mean slowdown."""
    grouping = grouping or groups(results)
    jobs = results.table("jobs", ["workload", "arrival", "finish", "response_time_s",
                                  "slowdown"])
    summary = results.table("summary")
    columns = ["workload", GROUP, "run_id", "seed", "jobs", *METRICS]
    if jobs.empty or summary.empty:
        return pd.DataFrame(columns=columns)
    s = summary.drop_duplicates("run_id").set_index("run_id")
    start = jobs["run_id"].map(s["duration_s"] - s["window_s"]).astype(float)
    end = jobs["run_id"].map(s["duration_s"]).astype(float)
    arrival = jobs["arrival"]
    keep = ((arrival >= start) & (arrival <= end)).to_numpy()
    del start, end, arrival
    response = jobs["response_time_s"].to_numpy(float)[keep]
    # one lean frame (a long table: no more copies of it than this one)
    lean = with_groups(pd.DataFrame({
        "workload": _apps(jobs["workload"][keep]),
        "run_id": jobs["run_id"].array[keep], "seed": jobs["seed"].to_numpy()[keep],
        "response_time_s": np.where(np.isfinite(response), response, np.nan),  # finished
        "slowdown": jobs["slowdown"].where(jobs["finish"].notna()).to_numpy(float)[keep],
    }), grouping)
    del jobs, response
    by = lean.groupby(["workload", GROUP, "run_id", "seed"], sort=True, observed=True)
    out = pd.DataFrame({"jobs": by.size(), "p99_s": by["response_time_s"].quantile(0.99),
                        "slowdown": by["slowdown"].mean()}).reset_index()
    return out.astype({"workload": str, GROUP: str, "run_id": str})[columns]


def energy(results: Results, grouping: Groups | None = None) -> pd.DataFrame:
    """What consolidating costs and saves, per group: :data:`ENERGY` × groups, 'mean ±
    95 % CI' cells (:func:`~fleet_sim.report.numbers.group_table`; a figure no run has is
    left out). Empty unless some run consolidates (its summary counts ``migrations``)."""
    summary = results.table("summary")
    if summary.empty or "migrations" not in summary or summary["migrations"].isna().all():
        return pd.DataFrame()
    grouping = grouping or groups(results)
    frame = with_groups(summary.drop_duplicates("run_id"), grouping)
    return group_table(frame[["run_id", GROUP, *(c for c in ENERGY if c in frame)]],
                       "summary", grouping.order)


def _apps(workloads: pd.Series) -> pd.Categorical:
    """:func:`app_workload` of each name, mapped over a categorical's categories only."""
    cat = workloads.astype("category").array
    apps, codes = np.unique([app_workload(c) for c in cat.categories], return_inverse=True)
    codes = np.append(codes, -1)  # a missing name (code -1) stays missing
    return pd.Categorical.from_codes(codes[cat.codes], categories=apps)


def _ci(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    return mean_ci(x) if x.size else (math.nan, math.nan)


def _paired(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[float, float, int]:
    """Mean and 95 % CI half-width of a − b over the seeds both hold, and their count."""
    both = a.set_index("seed")[metric].to_frame("a").join(
        b.set_index("seed")[metric].to_frame("b"), how="inner")
    d = (both["a"] - both["b"]).to_numpy(float)
    return (*_ci(d), int(np.isfinite(d).sum()))


def headline(results: Results, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per job workload and group (groups in display order): ``runs``, ``p99_s`` and
    ``p99_ci95_s`` (mean over runs of the window's 99th percentile response time and
    the 95 % CI half-width), ``slowdown`` and ``slowdown_ci95``, ``reference`` (the
    group differences are taken from), ``pairs`` (seeds in both) and the paired
    differences ``p99_diff_s``, ``p99_diff_ci95_s``, ``slowdown_diff``,
    ``slowdown_diff_ci95`` (NaN for the reference itself). Empty without jobs.
    ``runs``: :func:`per_run` of ``results``, if already computed."""
    grouping = groups(results)
    runs = per_run(results, grouping) if runs is None else runs
    reference = grouping.baseline or (grouping.order[0] if grouping.order else None)
    rows = []
    for workload, of_workload in runs.groupby("workload", sort=True):
        ref = of_workload[of_workload[GROUP] == reference]
        for group in grouping.order:
            g = of_workload[of_workload[GROUP] == group]
            if g.empty:
                continue
            row: dict = {"workload": workload, "group": group, "runs": len(g)}
            for metric in METRICS:
                mean, half = _ci(g[metric].to_numpy(float))
                row |= {metric: mean, _ci_name(metric): half}
            row |= {"reference": reference, "pairs": 0}
            for metric in METRICS:
                mean, half, pairs = ((math.nan, math.nan, 0) if group == reference or ref.empty
                                     else _paired(g, ref, metric))
                row |= {_diff_name(metric): mean, _ci_name(_diff_name(metric)): half,
                        "pairs": max(row["pairs"], pairs)}
            rows.append(row)
    return pd.DataFrame(rows)


def differences(results: Results, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paired difference of every later group from every earlier one (display order),
    per job workload: ``workload``, ``group``, ``minus``, ``pairs``, then ``p99_diff_s``,
    ``slowdown_diff`` and their 95 % CI half-widths (``runs``: as in :func:`headline`)."""
    grouping = groups(results)
    runs = per_run(results, grouping) if runs is None else runs
    rows = []
    for workload, of_workload in runs.groupby("workload", sort=True):
        by = {g: of_workload[of_workload[GROUP] == g] for g in grouping.order}
        for i, a in enumerate(grouping.order):
            for b in grouping.order[:i]:
                if by[a].empty or by[b].empty:
                    continue
                row: dict = {"workload": workload, "group": a, "minus": b}
                for metric in METRICS:
                    mean, half, pairs = _paired(by[a], by[b], metric)
                    row |= {"pairs": pairs, _diff_name(metric): mean,
                            _ci_name(_diff_name(metric)): half}
                rows.append(row)
    return pd.DataFrame(rows)


def _diff_name(metric: str) -> str:
    return metric.replace("p99_s", "p99_diff_s") if metric == "p99_s" else f"{metric}_diff"


def _ci_name(metric: str) -> str:
    return metric[:-2] + "_ci95_s" if metric.endswith("_s") else f"{metric}_ci95"


def headline_table(headline_frame: pd.DataFrame) -> pd.DataFrame:
    """The headline as printed (terminal and HTML): one row per workload and group with
    'mean ± 95 % CI' cells, and the paired differences from the reference group."""
    if headline_frame.empty:
        return pd.DataFrame()
    ref = headline_frame["reference"].iloc[0]
    several = headline_frame["workload"].nunique() > 1
    out = pd.DataFrame({
        **({"workload": headline_frame["workload"]} if several else {}),
        "group": [f"{g} (reference)" if g == ref else g for g in headline_frame["group"]],
        "runs": headline_frame["runs"],
        "p99 response time (s)": [ci_cell(m, h) for m, h in
                                  zip(headline_frame["p99_s"], headline_frame["p99_ci95_s"],
                                      strict=True)],
        f"Δ p99 vs {ref} (s)": [_signed(m, h) for m, h in
                                zip(headline_frame["p99_diff_s"],
                                    headline_frame["p99_diff_ci95_s"], strict=True)],
        "mean slowdown": [ci_cell(m, h) for m, h in
                          zip(headline_frame["slowdown"], headline_frame["slowdown_ci95"],
                              strict=True)],
        f"Δ slowdown vs {ref}": [_signed(m, h) for m, h in
                                 zip(headline_frame["slowdown_diff"],
                                     headline_frame["slowdown_diff_ci95"], strict=True)],
    })
    return out.reset_index(drop=True)


def differences_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`differences` as printed: 'a − b' and the signed 'mean ± CI' cells."""
    if frame.empty:
        return pd.DataFrame()
    several = frame["workload"].nunique() > 1
    return pd.DataFrame({
        **({"workload": frame["workload"]} if several else {}),
        "difference": [f"{a} − {b}" for a, b in zip(frame["group"], frame["minus"],
                                                    strict=True)],
        "pairs": frame["pairs"],
        "Δ p99 response time (s)": [_signed(m, h) for m, h in
                                    zip(frame["p99_diff_s"], frame["p99_diff_ci95_s"],
                                        strict=True)],
        "Δ mean slowdown": [_signed(m, h) for m, h in
                            zip(frame["slowdown_diff"], frame["slowdown_diff_ci95"],
                                strict=True)],
    }).reset_index(drop=True)


def _signed(mean: float, half: float) -> str:
    text = ci_cell(mean, half)
    return f"+{text}" if not math.isnan(mean) and mean > 0 else text
