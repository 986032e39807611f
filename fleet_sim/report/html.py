"""``fleet-sim report DIR``: one self-contained HTML page (plus the PNGs) for a run or a sweep.

The page holds every figure that the stored tables support (images embedded as
base64, so the file can be mailed or attached to a ticket on its own), the
headline tables (one run: the ``summary`` with units; a sweep: the mean and 95 %
confidence interval of each metric per sweep point), the per-workload figures,
the events by kind, and the resolved config from ``manifest.json``. Figures are
drawn by :mod:`fleet_sim.report.figures` on figures made here without pyplot,
so writing a report never touches the interactive backend or global state.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fleet_sim.report import figures as fg
from fleet_sim.report.style import RC, mode_order
from fleet_sim.results import store
from fleet_sim.results.schema import TABLES
from fleet_sim.results.store import Results

REPORT_HTML = "report.html"
#: workloads shown in the "demand vs allocated" figure (the most unmet CPU first)
MAX_WORKLOADS = 3
#: PNG resolution (dots per inch)
DPI = 110


@dataclass
class _Figure:
    """One saved figure: file name, title, caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def _save(fig: Figure, out_dir: Path, name: str) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    data = buffer.getvalue()
    (out_dir / f"{name}.png").write_bytes(data)
    return data


def _new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    with mpl.rc_context(RC):
        return Figure(figsize=(width, height), layout="constrained")


# ---------------------------------------------------------------- reading
def _mode_of(manifest: dict[str, Any]) -> str | None:
    params = manifest.get("params") or {}
    if "hosting.mode" in params:
        return str(params["hosting.mode"])
    config = manifest.get("config") or {}
    hosting = config.get("hosting") if isinstance(config, dict) else None
    if isinstance(hosting, dict) and "mode" in hosting:
        return str(hosting["mode"])
    return None


def _with_mode(frame: pd.DataFrame, modes: dict[str, str]) -> pd.DataFrame:
    """``frame`` with a ``mode`` column taken from each run's config when it has none."""
    if fg.mode_column(frame) is not None or "run_id" not in frame.columns or not modes:
        return frame
    return frame.assign(mode=frame["run_id"].map(modes))


def _tables(results: Results) -> dict[str, pd.DataFrame]:
    """Every non-empty table of the successful runs, with a mode column where known."""
    modes = {m["run_id"]: mode for m in results.manifests
             if m.get("status") == store.OK and (mode := _mode_of(m)) is not None}
    out = {}
    for name in TABLES:
        frame = results.table(name)
        if len(frame):
            out[name] = _with_mode(frame, modes)
    return out


# ---------------------------------------------------------------- figures
def _durations(tables: dict[str, pd.DataFrame]) -> pd.Series | None:
    summary = tables.get("summary")
    if summary is None or "duration_s" not in summary.columns or "run_id" not in summary:
        return None
    return summary.drop_duplicates("run_id").set_index("run_id")["duration_s"]


def _warmups(tables: dict[str, pd.DataFrame]) -> pd.Series | None:
    summary = tables.get("summary")
    if summary is None or not {"duration_s", "window_s", "run_id"} <= set(summary.columns):
        return None
    s = summary.drop_duplicates("run_id").set_index("run_id")
    return s["duration_s"] - s["window_s"]


def _per_group_runs(frame: pd.DataFrame) -> list[tuple[str, Any, pd.DataFrame]]:
    """(group label, run id, rows) of the first run of each mode group."""
    out = []
    for label, group, _ in fg._groups(frame, "mode"):
        run, rows, _ = fg._first_run(group)
        if len(rows):
            out.append((label, run, rows))
    return out


def _figures(tables: dict[str, pd.DataFrame], out_dir: Path) -> tuple[list[_Figure], list[str]]:
    """Draw and save every figure the tables support; return them and any problems."""
    made: list[_Figure] = []
    problems: list[str] = []
    t_end = _durations(tables)

    def draw(name: str, title: str, caption: str, paint: Callable[[Figure], None],
             size: tuple[float, float] = (8.0, 4.5)) -> None:
        fig = _new_figure(*size)
        try:
            paint(fig)
            made.append(_Figure(name, title, caption, _save(fig, out_dir, name)))
        except Exception as e:  # a figure that cannot be drawn is reported, not fatal
            problems.append(f"{title}: {type(e).__name__}: {e}")
            warnings.warn(f"report: {title} could not be drawn: {type(e).__name__}: {e}",
                          RuntimeWarning, stacklevel=3)

    def end_of(run: Any) -> float | None:
        return None if t_end is None or run not in t_end else float(t_end[run])

    hosts = tables.get("hosts")
    if hosts is not None:
        several = hosts["run_id"].nunique() > 1 if "run_id" in hosts else False
        for label, run, rows in _per_group_runs(hosts):
            n_hosts = rows["host"].nunique()
            suffix = f"_{label}" if label else ""
            draw(f"utilization_heatmap{suffix}",
                 f"CPU utilization per host{' — ' + label if label else ''}",
                 "Each cell is the exact time-weighted mean CPU utilization of one host "
                 "over one time bin" + (" (the mode's first run)." if several else "."),
                 lambda fig, rows=rows, run=run: fg.utilization_heatmap(
                     rows, t_end=end_of(run), ax=fig.add_subplot()),
                 (9.0, min(9.0, 2.4 + 0.16 * n_hosts)))
        draw("utilization_distribution", "Host utilization distribution",
             "Fraction of host-time spent at or below each utilization, pooling every host "
             "and replication, over the statistics window (after the warm-up).",
             lambda fig: fg.utilization_distribution(hosts, t_end=t_end,
                                                     t_start=_warmups(tables),
                                                     ax=fig.add_subplot()))
        draw("memory_over_time", "Memory in use",
             "RAM in use or reserved, summed over the fleet; dashed: the fleet's RAM.",
             lambda fig: fg.memory_over_time(hosts, fleet=tables.get("fleet"), t_end=t_end,
                                             ax=fig.add_subplot()))
        draw("power_over_time", "Power and energy",
             "Electrical power of the fleet; the legend gives the energy over the run.",
             lambda fig: fg.power_over_time(hosts, t_end=t_end, ax=fig.add_subplot()))

    workloads = tables.get("workloads")
    if workloads is not None:
        names = _worst_workloads(tables)
        groups = _per_group_runs(workloads)
        if names and groups:
            def paint(fig: Figure) -> None:
                grid = fig.subplots(len(names), len(groups), squeeze=False, sharex=True)
                for i, name in enumerate(names):
                    for j, (label, run, rows) in enumerate(groups):
                        ax = grid[i][j]
                        if not (rows["workload"] == name).any():
                            ax.set_axis_off()
                            continue
                        fg.workload_cpu(rows, name, t_end=end_of(run), ax=ax,
                                        title=f"{name}{' — ' + label if label else ''}")
                        ax.tick_params(labelbottom=True)
                        if j:
                            ax.set_ylabel("")

            draw("workload_cpu", "Demand vs allocated CPU",
                 f"The {len(names)} workload(s) with the most unmet CPU. Allocated CPU is "
                 "filled in the hosting mode's colour; contention (taken by neighbours, "
                 "steal for VMs) and throttled (the unit's own caps) are stacked on top; "
                 "the black line is the demand.", paint,
                 (4.6 * len(groups) + 1.0, 3.4 * len(names) + 0.6))
        ws = tables.get("workload_summary")
        demand = _demand_workloads(tables)
        if ws is not None and demand and (ws["demand_core_s"] > 0).any():
            draw("unmet_cpu", "Unmet CPU per hosting mode",
                 f"CPU wanted but not received by the {len(demand)} demand workload(s) "
                 "(CPU they do not get is lost), summed per run, mean over replications, "
                 "split by who is to blame: contention (neighbours; steal for VMs) or "
                 "throttled (the unit's own caps).",
                 lambda fig: fg.unmet_cpu(ws, demand, ax=fig.add_subplot()), (7.0, 4.2))

    jobs = tables.get("jobs")
    warmups = _warmups(tables)
    if jobs is not None and warmups is not None and "run_id" in jobs.columns:
        # the statistics window of each run, as in the summary's percentiles
        jobs = jobs[jobs["arrival"] >= jobs["run_id"].map(warmups).fillna(0.0)]
    if jobs is not None and jobs["response_time_s"].notna().any():
        draw("response_time_cdf", "Job response time",
             "Empirical CDF of the response times of jobs arriving after the warm-up, "
             "pooling every replication.",
             lambda fig: fg.response_time_cdf(jobs, ax=fig.add_subplot()))

    summary = tables.get("summary")
    if summary is not None and any(c in summary.columns
                                   for c in ("apps_per_host", "hosts_needed", "hosts_used")):
        panels = len(fg._density_metrics(summary, None))
        draw("density_summary", "Density",
             "Mean over replications with 95 % confidence intervals.",
             lambda fig: fg.density_summary(summary, axes=list(
                 fig.subplots(1, panels, squeeze=False)[0])),
             (4.2 * panels + 0.8, 4.2))

    capacity = tables.get("capacity")
    if capacity is not None and {"t", "old_healthy", "new_healthy"} <= set(capacity.columns):
        # the full-capacity line: hosts in the fleet, else hosts in the rollout's timeline
        hosts_of = tables.get("fleet")
        if hosts_of is None or hosts_of.empty:
            hosts_of = tables.get("timeline")
        n_hosts = None
        if hosts_of is not None and len(hosts_of):
            per_run = (hosts_of.groupby("run_id")["host"].nunique() if "run_id" in hosts_of
                       else [hosts_of["host"].nunique()])
            n_hosts = int(max(per_run))
        groups = _per_group_runs(capacity)

        def paint_rollout(fig: Figure) -> None:
            # one panel per mode: their rollouts may take seconds or hours
            grid = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
            for ax, (label, _, rows) in zip(grid, groups, strict=True):
                fg.rollout_timeline(rows, n_hosts=n_hosts, ax=ax,
                                    title=label or "Rollout")
                if ax is not grid[0]:
                    ax.set_ylabel("")

        draw("rollout_timeline", "Rollout",
             "Healthy (serving) instances of the old version (dashed) and the new version "
             "(solid) over time, one panel per hosting mode with its own time axis "
             "(first replication).", paint_rollout, (4.4 * max(1, len(groups)) + 0.6, 4.0))
    return made, problems


def _demand_workloads(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Workloads that are not job workloads: CPU they do not get is lost (DESIGN §3.2)."""
    names = tables["workloads"]["workload"].unique()
    jobs = tables.get("jobs")
    job_names = set() if jobs is None else set(jobs["workload"].unique())
    return sorted((str(n) for n in names if n not in job_names), key=fg.natural_key)


def _worst_workloads(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Up to MAX_WORKLOADS workload names with the most unmet CPU (else the most demand),
    demand workloads first: a job workload's demand counts its queue, not lost CPU."""
    demand = _demand_workloads(tables)
    pool = demand or sorted(map(str, tables["workloads"]["workload"].unique()),
                            key=fg.natural_key)
    ws = tables.get("workload_summary")
    if ws is None or ws.empty:
        return pool[:MAX_WORKLOADS]
    per = ws[ws["workload"].isin(pool)].groupby("workload")[
        ["unmet_core_s", "demand_core_s"]].sum()
    lost = per["unmet_core_s"] > 1e-9 * per["demand_core_s"]  # beyond float noise
    if lost.any():  # show only workloads that lost something
        per = per[lost]
    per = per.sort_values(["unmet_core_s", "demand_core_s"], ascending=False)
    return [str(n) for n in per.index[:MAX_WORKLOADS]]


# ---------------------------------------------------------------- tables as HTML
def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape(str(value))


def _table_html(frame: pd.DataFrame, index: bool = False) -> str:
    frame = frame.reset_index() if index else frame
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _units(table: str) -> dict[str, tuple[str, str]]:
    schema = TABLES.get(table)
    return {} if schema is None else {c.name: (c.unit, c.description) for c in schema.columns}


def _summary_section(results: Results, frame: pd.DataFrame, table: str) -> str:
    """One run: each figure with its unit and meaning. Many runs: per sweep point, the
    mean ± 95 % confidence half-width over replications (figures NaN everywhere left out)."""
    units = _units(table)
    skip = {"run_id", "seed", "replication", "mode", *results.params}
    columns = [c for c in frame.columns if c not in skip and frame[c].notna().any()]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    if len(frame) == 1:
        row = frame.iloc[0]
        return _table_html(pd.DataFrame({
            "metric": columns, "value": [row[c] for c in columns],
            "unit": [units.get(c, ("", ""))[0] for c in columns],
            "meaning": [units.get(c, ("", ""))[1] for c in columns]}))
    by = [c for c in results.params if c in frame.columns]
    if not by and "mode" in frame.columns and frame["mode"].nunique() > 1:
        by = ["mode"]
    from fleet_sim.results.tables import replication_summary

    stats = replication_summary(frame, by, numeric)
    stats["value"] = [_fmt(m) if math.isnan(h) or h == 0 else f"{_fmt(m)} ± {_fmt(h)}"
                      for m, h in zip(stats["mean"], stats["ci95"], strict=True)]
    texts = [c for c in columns if c not in numeric]
    for c in texts:  # e.g. a rollout's outcome: the values seen, with their counts
        counts = frame.groupby([*by, c], sort=False).size().rename("n").reset_index()
        counts["value"] = counts[c].astype(str) + " ×" + counts["n"].astype(str)
        joined = (counts.groupby(by, sort=False)["value"].agg(", ".join).reset_index()
                  if by else pd.DataFrame({"value": [", ".join(counts["value"])]}))
        stats = pd.concat([stats, joined.assign(metric=c)], ignore_index=True)
    if by:
        stats["point"] = stats[by].astype(str).agg(", ".join, axis=1)
        wide = stats.pivot(index="metric", columns="point", values="value")
        wide = wide.loc[[c for c in columns if c in wide.index], _point_order(stats, by)]
    else:
        wide = stats.set_index("metric")[["value"]]
    wide.insert(0, "unit", [units.get(m, ("", ""))[0] for m in wide.index])
    n = int(stats["n"].max()) if "n" in stats and stats["n"].notna().any() else 0
    note = (f"<p class='note'>Mean ± 95 % confidence half-width over {n} replications "
            "(Student t).</p>") if n > 1 else ""
    return note + _table_html(wide, index=True)


def _point_order(stats: pd.DataFrame, by: list[str]) -> list[str]:
    points = stats.drop_duplicates("point")
    if by == ["mode"] or by == ["hosting.mode"]:
        order = mode_order(points[by[0]].astype(str))
        return [p for m in order for p in points.loc[points[by[0]].astype(str) == m, "point"]]
    return list(points["point"])


def _workload_section(tables: dict[str, pd.DataFrame], params: list[str]) -> str:
    ws = tables.get("workload_summary")
    if ws is None or ws.empty:
        return ""
    by = [c for c in (*params, "mode") if c in ws.columns]
    by = list(dict.fromkeys(by))
    cols = [c for c in ("demand_core_s", "allocated_core_s", "throttled_core_s",
                        "contention_core_s", "satisfied_fraction", "jobs_finished",
                        "response_time_p50_s", "response_time_p99_s") if c in ws.columns]
    frame = ws.groupby([*by, "workload"], sort=False)[cols].mean().reset_index()
    if by:
        key = frame[by[0]].astype(str)
        rank = {m: i for i, m in enumerate(mode_order(key))} if by[0] in fg.MODE_COLUMNS else {}
        frame = frame.assign(_r=key.map(rank).fillna(0)).sort_values(
            ["_r", "workload"], kind="stable").drop(columns="_r")
    units = _units("workload_summary")
    frame.columns = [f"{c} ({units[c][0]})" if units.get(c, ("", ""))[0] else c
                     for c in frame.columns]
    replicated = "replication" in ws.columns and ws["replication"].nunique() > 1
    return ("<h2>Workloads</h2><p class='note'>Per workload over the statistics window"
            f"{' (mean over replications)' if replicated else ''}.</p>" + _table_html(frame))


def _events_section(tables: dict[str, pd.DataFrame]) -> str:
    events = tables.get("events")
    if events is None or events.empty:
        return ""
    by = [c for c in ("mode",) if c in events.columns]
    counts = events.groupby([*by, "kind"]).size().rename("count").reset_index()
    return "<h2>Events</h2>" + _table_html(counts)


def _config_section(results: Results) -> str:
    ok = [m for m in results.manifests if m.get("config") is not None]
    if not ok:
        return ""
    first = ok[0]
    parts = ["<h2>Resolved config</h2>"]
    if len(results.manifests) > 1:
        axes: dict[str, list[Any]] = {}
        for m in results.manifests:
            for k, v in (m.get("params") or {}).items():
                if v not in axes.setdefault(k, []):
                    axes[k].append(v)
        seeds = sorted({m.get("seed") for m in results.manifests})
        parts.append("<p>The sweep's runs share this config except for the swept "
                     "parameters " + (", ".join(f"<code>{html.escape(k)}</code> ∈ "
                                                f"{html.escape(json.dumps(v))}"
                                                for k, v in axes.items()) or "(none)")
                     + f" and the seeds ({len(seeds)} replications). Shown: the first run.</p>")
    parts.append(f"<pre>{html.escape(json.dumps(first['config'], indent=2))}</pre>")
    return "".join(parts)


def _runs_section(results: Results) -> str:
    runs = results.runs
    failed = runs[runs["status"] != store.OK] if "status" in runs else runs.iloc[:0]
    out = ""
    if len(failed):
        out += (f"<p class='bad'>{len(failed)} of {len(runs)} runs failed; their errors:</p>"
                + _table_html(failed[["run_id", "error"]]))
    if len(runs) > 1:
        out += "<details><summary>All runs</summary>" + _table_html(runs) + "</details>"
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1.5em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #eee;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#666;font-size:.9em} .note{color:#555;font-size:.9em}
.bad{color:#b00020;font-weight:bold}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;white-space:nowrap}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
figure{margin:1.4em 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em;margin-top:.3em}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:.8em;max-height:40em}
code{background:#f4f4f4;padding:0 .2em}
"""


def write_report(run_or_sweep_dir: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write ``report.html`` and one PNG per figure for the run(s) stored in ``run_or_sweep_dir``.

    ``run_or_sweep_dir``: a run folder (with ``manifest.json``) or a folder of runs (a
    sweep), as written by ``fleet-sim run --out`` / ``sweep``. ``out_dir``: where to
    write (default: ``<run_or_sweep_dir>/report``). Returns the path of the HTML file,
    which embeds every image and needs no other file.

    Raises FleetSimError if the folder holds no run.
    """
    source = Path(run_or_sweep_dir)
    results = store.load(source)
    out = Path(out_dir) if out_dir is not None else source / "report"
    out.mkdir(parents=True, exist_ok=True)
    tables = _tables(results)
    made, problems = _figures(tables, out)

    n = len(results.manifests)
    ok = sum(m.get("status") == store.OK for m in results.manifests)
    versions = sorted({str(m.get("fleet_sim_version", "?")) for m in results.manifests})
    scenario = sorted({str(m.get("source", "")) for m in results.manifests})
    title = f"fleet_sim report — {source.resolve().name}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{'Sweep of ' + str(n) + ' runs' if n > 1 else 'One run'} "
        f"({ok} succeeded) · scenario {html.escape(', '.join(scenario))} · "
        f"swept: {html.escape(', '.join(results.params) or 'nothing')} · "
        f"fleet_sim {html.escape(', '.join(versions))} · generated "
        f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} from "
        f"<code>{html.escape(str(source))}</code></p>",
        _runs_section(results),
    ]
    for name, heading in (("summary", "Summary"), ("rollout_summary", "Rollout")):
        if name in tables:
            parts += [f"<h2>{heading}</h2>", _summary_section(results, tables[name], name)]
    if problems:
        parts.append("<p class='bad'>Some figures could not be drawn:</p><ul>"
                     + "".join(f"<li>{html.escape(p)}</li>" for p in problems) + "</ul>")
    parts.append("<h2>Figures</h2>" if made else "<p>No table holds data to plot.</p>")
    for f in made:
        data = base64.b64encode(f.png).decode("ascii")
        parts.append(f"<figure id='{f.name}'><img alt='{html.escape(f.title)}' "
                     f"src='data:image/png;base64,{data}'><figcaption><b>"
                     f"{html.escape(f.title)}.</b> {html.escape(f.caption)} "
                     f"<a href='{f.name}.png'>{f.name}.png</a></figcaption></figure>")
    parts += [_workload_section(tables, results.params), _events_section(tables),
              _config_section(results), "</body></html>"]
    path = out / REPORT_HTML
    path.write_text("\n".join(p for p in parts if p), encoding="utf-8")
    return path
