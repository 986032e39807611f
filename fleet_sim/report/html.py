"""``fleet-sim report DIR``: one self-contained HTML page (plus the PNGs) for a run or a sweep.

The page leads with the scenario's question and the answer in numbers
(:func:`fleet_sim.report.answer.headline`: the job workloads' p99 response time
and slowdown per group of runs, with 95 % confidence intervals and paired
differences), then the summary (mean ± 95 % CI per group), the figures a reader
looks at first (response times, the victim's and its neighbours' CPU, unmet CPU,
utilization, power, memory; per-host heatmaps last), the workloads, the events
and the resolved config as TOML. Runs are grouped by the key paths in which
their resolved configs differ (:mod:`fleet_sim.report.groups`); failed runs are
listed at the top and left out of every number. Images are embedded as base64,
so the file can be mailed on its own. The page is rendered from the Jinja2
template ``templates/report.html.j2``; figures are drawn by
:mod:`fleet_sim.report.figures` on figures made here without pyplot, so writing a
report never touches the interactive backend or global state.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure

from fleet_sim.images.supply import FIRST_VERSION
from fleet_sim.report import answer, config_toml
from fleet_sim.report import figures as fg
from fleet_sim.report.groups import GROUP, Groups, groups, with_groups
from fleet_sim.report.numbers import fmt, group_table, unit_label
from fleet_sim.report.style import RC
from fleet_sim.results import store
from fleet_sim.results.schema import TABLES
from fleet_sim.results.store import Results

REPORT_HTML = "report.html"
#: neighbour workloads shown beside the victim in the "demand vs allocated" figure
MAX_NEIGHBOURS = 2
#: PNG resolution (dots per inch)
DPI = 110

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("fleet_sim.report", "templates"),
    autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


@dataclass
class _Figure:
    """One saved figure: file name, title, caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes

    @property
    def data(self) -> str:
        """The PNG as base64 text, for a data: URL."""
        return base64.b64encode(self.png).decode("ascii")


@dataclass
class _Table:
    """A table as the template prints it: headers, rows of text, leading text columns."""

    columns: list[str]
    rows: list[list[str]]
    text_columns: int = 1

    @classmethod
    def of(cls, frame: pd.DataFrame, units: dict[str, str] | None = None,
           index: bool = False, text_columns: int = 1) -> _Table:
        """``frame`` with every value through :func:`fmt` (with its column's unit)."""
        frame = frame.reset_index() if index else frame
        units = units or {}
        if index:
            frame = frame.rename(columns={"index": ""})
        rows = [[fmt(v, units.get(str(c), "")) for c, v in zip(frame.columns, row, strict=True)]
                for row in frame.itertuples(index=False)]
        return cls([str(c) for c in frame.columns], rows, text_columns)


@dataclass
class _Context:
    """What the figures need: the tables (with a group column) and each run's window."""

    tables: dict[str, pd.DataFrame]
    grouping: Groups
    results: Results | None = None
    long_tables: frozenset[str] = frozenset()
    t_end: pd.Series | None = None
    t_start: pd.Series | None = None
    made: list[_Figure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    out_dir: Path = Path()

    def draw(self, name: str, title: str, caption: str, paint: Callable[[Figure], None],
             size: tuple[float, float] = (8.0, 4.5)) -> _Figure | None:
        with mpl.rc_context(RC):
            fig = Figure(figsize=size, layout="constrained")
        try:
            paint(fig)
        except Exception as e:  # a figure that cannot be drawn is reported, not fatal
            self.problems.append(f"{title}: {type(e).__name__}: {e}")
            warnings.warn(f"report: {title} could not be drawn: {type(e).__name__}: {e}",
                          RuntimeWarning, stacklevel=2)
            return None
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
        (self.out_dir / f"{name}.png").write_bytes(buffer.getvalue())
        made = _Figure(name, title, caption, buffer.getvalue())
        self.made.append(made)
        return made

    def long(self, name: str, columns: list[str], first_runs: bool = False,
             runs: list[str] | None = None,
             where: dict[str, list[str]] | None = None) -> pd.DataFrame | None:
        """Only ``columns`` of long table ``name`` (of each group's first run if
        ``first_runs``, else of ``runs`` or every run; only the rows ``where`` says),
        read now, with the group column; None if it has no rows."""
        if name not in self.long_tables or self.results is None:
            return None
        if first_runs:
            runs = [run for _, run in _first_runs(self.results, self.grouping)]
        frame = self.results.table(name, columns, runs, where)
        return with_groups(frame, self.grouping) if len(frame) else None

    def end_of(self, run: Any) -> float | None:
        return None if self.t_end is None or run not in self.t_end else float(self.t_end[run])

    def start_of(self, run: Any) -> float | None:
        return (None if self.t_start is None or run not in self.t_start
                else float(self.t_start[run]))

    def window(self) -> str:
        """The statistics window in words, for captions."""
        if self.t_start is None or self.t_end is None:
            return "the whole run"
        starts, ends = set(self.t_start), set(self.t_end)
        if len(starts) == 1 and len(ends) == 1:
            return (f"the statistics window [{fmt(starts.pop())} s, {fmt(ends.pop())} s] "
                    "(after the warm-up)")
        return "each run's statistics window (after its warm-up)"


# ---------------------------------------------------------------- reading
#: tables that grow with the jobs or the run's length: read a few columns at a time
#: the per-host heatmaps, drawn once their rows are read, shown at the end of the page
HEATMAP = "utilization_heatmap"
LONG_TABLES = frozenset({"jobs", "hosts", "workloads", "instances", "links"})


def _context(results: Results, out_dir: Path) -> _Context:
    grouping = groups(results)
    recorded = {t for m in results.manifests if m.get("status") == store.OK
                for t in m.get("tables", {})}
    tables = {}
    for name in TABLES:
        if name in LONG_TABLES:
            continue
        frame = results.table(name)
        if len(frame):
            tables[name] = with_groups(frame, grouping)
    ctx = _Context(tables, grouping, results, frozenset(LONG_TABLES & recorded),
                   out_dir=out_dir)
    summary = tables.get("summary")
    if summary is not None and {"duration_s", "window_s"} <= set(summary.columns):
        s = summary.drop_duplicates("run_id").set_index("run_id")
        ctx.t_end = s["duration_s"]
        ctx.t_start = s["duration_s"] - s["window_s"]
    return ctx


def _first_runs(results: Results, grouping: Groups) -> list[tuple[str, str]]:
    """(group label, run id) of each group's first replication (among the runs that
    finished), groups in display order."""
    runs = results.runs
    runs = runs[runs["status"] == store.OK].sort_values("replication", kind="stable")
    first: dict[str, str] = {}
    for run_id in runs["run_id"]:
        first.setdefault(grouping.of_run.get(run_id, ""), run_id)
    order = {label: i for i, label in enumerate(grouping.order)}
    return sorted(first.items(), key=lambda lr: order.get(lr[0], len(order)))


def _per_group_runs(frame: pd.DataFrame) -> list[tuple[str, Any, pd.DataFrame]]:
    """(group label, run id, rows) of the first run of each group."""
    out = []
    for label, group, _ in fg.grouped(frame, GROUP):
        run, rows, _ = fg.first_run(group)
        if len(rows):
            out.append((label, run, rows))
    return out


def _in_window(frame: pd.DataFrame, ctx: _Context, column: str) -> pd.DataFrame:
    if ctx.t_start is None or ctx.t_end is None:
        return frame
    start = frame["run_id"].map(ctx.t_start).astype(float)
    end = frame["run_id"].map(ctx.t_end).astype(float)
    return frame[(frame[column] >= start) & (frame[column] <= end)]


# ---------------------------------------------------------------- figures
def _answer_figures(ctx: _Context, headline: pd.DataFrame) -> list[_Figure]:
    if headline.empty:
        return []
    runs = int(headline["runs"].max())
    made = ctx.draw("headline", "The answer: response time and slowdown per group",
                    "Per job (request-serving) workload: the 99th percentile of the response "
                    f"times of jobs arriving in {ctx.window()} and their mean slowdown, "
                    + (f"mean over {runs} runs per group with 95 % Student-t confidence "
                       "intervals" if runs > 1 else "one run per group")
                    + "; the dotted line is the reference group "
                    f"({headline['reference'].iloc[0]}). The headline table's numbers.",
                    lambda fig: fg.headline_bars(headline, axes=list(fig.subplots(1, 2))),
                    (10.5, 4.4))
    return [made] if made else []


def _app_workloads(ctx: _Context) -> tuple[list[str], list[str]]:
    """(victims, neighbours): app workloads (replicas together) that serve jobs, and up
    to MAX_NEIGHBOURS others (no guest OS) that took the most CPU from their neighbours
    in the window, else that wanted the most."""
    jobs = ctx.long("jobs", ["workload"])
    victims = sorted({answer.app_workload(w) for w in jobs["workload"].unique()}) if (
        jobs is not None) else []
    ws = ctx.tables.get("workload_summary")
    if ws is None:
        return victims, []
    ws = ws[~ws["workload"].map(fg.is_pseudo)].assign(app=ws["workload"].map(answer.app_workload))
    others = ws[~ws["app"].isin(victims)].groupby("app")[["demand_core_s",
                                                          "allocated_core_s"]].sum()
    others["taken"] = others["demand_core_s"] - others["allocated_core_s"]
    others = others.sort_values(["taken", "demand_core_s"], ascending=False)
    return victims, [str(n) for n in others.index[:MAX_NEIGHBOURS]]


def _workload_figure(ctx: _Context) -> None:
    ws = ctx.tables.get("workload_summary")
    if "workloads" not in ctx.long_tables or ws is None or ctx.results is None:
        return
    victims, neighbours = _app_workloads(ctx)
    apps = [*victims, *neighbours]
    groups_ = _first_runs(ctx.results, ctx.grouping)
    if not apps or not groups_:
        return
    names = ws["workload"].unique()
    members = {a: sorted({str(w) for w in names if answer.app_workload(w) == a},
                         key=fg.natural_key) for a in apps}
    columns = ["t", "workload", "host", "instance", "demand_cores", *fg.CPU_PARTS]

    def paint(fig: Figure) -> None:
        grid = fig.subplots(len(groups_), len(apps), squeeze=False, sharex=True)
        for i, (label, run) in enumerate(groups_):
            end = ctx.end_of(run)
            folds: dict[str, fg.CpuFold] = {}
            if end is not None:
                # every app of one run in one pass, folded a chunk at a time: a long
                # table is never whole in memory (without the run's end: read whole)
                folds = {app: fg.CpuFold(members[app], end, ctx.start_of(run)) for app in apps}
                everyone = sorted({w for app in apps for w in members[app]})
                for chunk in ctx.results.chunks("workloads", columns, run,
                                                {"workload": everyone}):
                    for fold in folds.values():
                        fold.add(chunk)
            for j, app in enumerate(apps):
                ax = grid[i][j]
                rows = folds.get(app) if end is not None else ctx.long(
                    "workloads", columns, runs=[run], where={"workload": members[app]})
                role = "victim" if app in victims else "neighbour"
                try:
                    if rows is None:
                        raise fg.NoRows(app)
                    fg.workload_cpu(rows, members[app], t_end=end,
                                    t_start=ctx.start_of(run), mode=label, ax=ax,
                                    title=f"{app} ({role}) — {label}")
                except fg.NoRows:  # the app has no rows in this run
                    ax.set_axis_off()
                    continue
                ax.tick_params(labelbottom=True)
                del rows  # a table read whole: before the next app's rows are read
                if j:
                    ax.set_ylabel("")

    ctx.draw("workload_cpu", "Demand vs allocated CPU: the victim and its neighbours",
             f"Each row is a group (its first run), each column an app's workload summed over "
             f"its replicas: the request-serving victim(s) ({', '.join(victims) or 'none'}) "
             f"and the neighbour(s) that lost the most CPU ({', '.join(neighbours) or 'none'}),"
             f" over {ctx.window()}. Allocated CPU is filled in the group's colour; contention "
             "(taken by neighbours, steal for VMs) and throttled (the unit's own caps) are "
             "stacked on top; the black line is the demand (a job workload's demand includes "
             "its queued jobs).", paint, (4.6 * len(apps) + 0.6, 3.9 * len(groups_) + 0.4))


def _figures(ctx: _Context) -> None:
    """Draw every figure the tables support, the ones read first first."""
    t = ctx.tables
    jobs = ctx.long("jobs", ["workload", "arrival", "response_time_s", "outcome"])
    if jobs is not None and ctx.t_start is not None:
        jobs = _in_window(jobs, ctx, "arrival")
    if jobs is not None and jobs["response_time_s"].notna().any():
        ctx.draw("response_time_cdf", "Job response time",
                 f"Empirical CDF of the response times of jobs arriving in {ctx.window()}, "
                 "pooling every run of a group; the legend's p50 and p99 are of the pooled "
                 "jobs (the tables give the mean over runs of each run's percentile).",
                 lambda fig: fg.response_time_cdf(jobs, by=GROUP, ax=fig.add_subplot()))
    del jobs  # a long table: not held while the next ones are read
    _workload_figure(ctx)
    ws = t.get("workload_summary")
    if ws is not None and (ws["demand_core_s"] > 0).any():
        ctx.draw("unmet_cpu", "Unmet CPU per group",
                 f"CPU wanted but not received by all workloads over {ctx.window()}, summed "
                 "per run, mean over runs, split by who is to blame: contention (neighbours; "
                 "steal for VMs) or throttled (the unit's own caps); the label is the "
                 "summary's satisfied_fraction (allocated / demand, mean over runs).",
                 lambda fig: fg.unmet_cpu(ws, by=GROUP, ax=fig.add_subplot()), (7.5, 4.2))
    jobs = None  # each long table is read for its figure, a few columns at a time
    hosts = ctx.long("hosts", ["t", "host", "cpu_utilization"])
    if hosts is not None:
        ctx.draw("utilization_distribution", "Host utilization distribution",
                 "Fraction of host-time spent at or below each utilization, pooling every host "
                 f"and run of a group over {ctx.window()}. Per host: its p99 is not the "
                 "summary's cpu_utilization_p99, which is of the whole fleet's utilization; "
                 "the host-time mean equals the summary's cpu_utilization_mean when the "
                 "hosts have equal cores.",
                 lambda fig: fg.utilization_distribution(hosts, by=GROUP, t_end=ctx.t_end,
                                                         t_start=ctx.t_start,
                                                         ax=fig.add_subplot()))
        ok = None if ctx.results is None else ctx.results.runs["status"] == store.OK
        if ok is not None and len(_first_runs(ctx.results, ctx.grouping)) == int(ok.sum()):
            # every run is its group's first: the heatmap's rows are these (shown last)
            _heatmap_figure(ctx, hosts)
    hosts = None  # not held while the next columns are read
    hosts = ctx.long("hosts", ["t", "host", "power_w"])
    if hosts is not None:
        ctx.draw("power_over_time", "Power and energy",
                 "Electrical power of the fleet over the whole run (the group's first run); "
                 f"the legend gives the energy over {ctx.window()}, mean over the group's "
                 "runs: the summary's energy_kwh.",
                 lambda fig: fg.power_over_time(hosts, by=GROUP, t_end=ctx.t_end,
                                                t_start=ctx.t_start, ax=fig.add_subplot()))
    hosts = None
    hosts = ctx.long("hosts", ["t", "host", "ram_used_mib"], first_runs=True)
    if hosts is not None:
        ctx.draw("memory_over_time", "Memory in use",
                 "RAM in use or reserved, summed over the fleet, over the whole run (the "
                 "group's first run); dashed: the fleet's RAM.",
                 lambda fig: fg.memory_over_time(hosts, by=GROUP, fleet=t.get("fleet"),
                                                 t_end=ctx.t_end, ax=fig.add_subplot()))
    del hosts
    summary = t.get("summary")
    if summary is not None and any(c in summary.columns
                                   for c in ("apps_per_host", "hosts_needed", "hosts_used")):
        panels = len(fg.density_metrics(summary, None))
        ctx.draw("density_summary", "Density",
                 "Mean over runs with 95 % confidence intervals.",
                 lambda fig: fg.density_summary(summary, by=GROUP, axes=list(
                     fig.subplots(1, panels, squeeze=False)[0])),
                 (4.2 * panels + 0.8, 4.2))
    _rollout_figure(ctx)
    if not any(f.name == HEATMAP for f in ctx.made):
        hosts = ctx.long("hosts", ["t", "host", "cpu_utilization"], first_runs=True)
        if hosts is not None:
            _heatmap_figure(ctx, hosts)


def _rollout_figure(ctx: _Context) -> None:
    capacity = ctx.tables.get("capacity")
    if capacity is None or not {"t", "old_healthy", "new_healthy"} <= set(capacity.columns):
        return
    # the full-capacity line: the replicas rolled out (old-version instances)
    timeline = ctx.tables.get("timeline")
    n_replicas = None
    if timeline is not None and len(timeline):
        old = timeline[timeline["version"] == FIRST_VERSION]
        if len(old):
            n_replicas = int(old.groupby("run_id")["instance"].nunique().max())
    groups_ = _per_group_runs(capacity)

    def paint(fig: Figure) -> None:
        # one panel per group: their rollouts may take seconds or hours
        grid = fig.subplots(1, len(groups_), squeeze=False, sharey=True)[0]
        for ax, (label, _, rows) in zip(grid, groups_, strict=True):
            fg.rollout_timeline(rows, by=GROUP, n_replicas=n_replicas, ax=ax, title=label)
            if ax is not grid[0]:
                ax.set_ylabel("")

    ctx.draw("rollout_timeline", "Rollout",
             "Healthy (serving) instances of the old version (dashed) and the new version "
             "(solid) over time, one panel per group with its own time axis (its first run).",
             paint, (4.4 * max(1, len(groups_)) + 0.6, 4.0))


def _heatmap_figure(ctx: _Context, hosts: pd.DataFrame) -> None:
    groups_ = _per_group_runs(hosts)
    n_hosts = max(rows["host"].nunique() for _, _, rows in groups_)

    def paint(fig: Figure) -> None:
        axes = fig.subplots(len(groups_), 1, squeeze=False, sharex=True)[:, 0]
        for ax, (label, run, rows) in zip(axes, groups_, strict=True):
            fg.utilization_heatmap(rows, t_end=ctx.end_of(run), ax=ax,
                                   title=f"CPU utilization per host — {label}")

    ctx.draw(HEATMAP, "CPU utilization per host",
             "One panel per group (its first run), over the whole run: each cell is the exact "
             "time-weighted mean CPU utilization of one host over one time bin.",
             paint, (9.0, len(groups_) * min(5.0, 1.6 + 0.16 * n_hosts) + 0.4))


# ---------------------------------------------------------------- tables
def _summaries(ctx: _Context) -> list[dict[str, Any]]:
    out = []
    for name, heading in (("summary", "Summary"), ("rollout_summary", "Rollout")):
        frame = ctx.tables.get(name)
        if frame is None:
            continue
        wide = group_table(frame, name, ctx.grouping.order)
        n = frame.groupby(GROUP, observed=True)["run_id"].nunique()
        note = (f"Mean ± 95 % confidence half-width (Student t) over the runs of each group "
                f"({', '.join(f'{g}: {k}' for g, k in n.items())}), over {ctx.window()}."
                if n.max() > 1 else f"One run per group, over {ctx.window()}.")
        if len(ctx.grouping.order) == 1 and n.max() == 1:
            described = {c.name: c.description for c in TABLES[name].columns}
            wide["meaning"] = [described.get(m, "") for m in wide.index]
        out.append({"heading": heading, "note": note,
                    "table": _Table.of(wide, index=True, text_columns=2)})
    return out


def _workloads(ctx: _Context) -> _Table | None:
    ws = ctx.tables.get("workload_summary")
    if ws is None or ws.empty:
        return None
    cols = ["demand_core_s", "allocated_core_s", "satisfied_fraction", "contention_core_s",
            "throttled_core_s", "jobs_finished", "response_time_p99_s"]
    frame = (ws.groupby([GROUP, "workload"], observed=True, sort=True)[cols].mean()
             .reset_index())
    frame["workload"] = pd.Categorical(frame["workload"], ordered=True, categories=sorted(
        frame["workload"].unique(), key=fg.natural_key))
    frame = frame.sort_values([GROUP, "workload"], kind="stable")
    units = {c.name: c.unit for c in TABLES["workload_summary"].columns}
    shown = {c: f"{c.removesuffix('_core_s').removesuffix('_s').replace('_', ' ')}"
                f"{' (' + unit_label(units[c]) + ')' if units[c] else ''}" for c in cols}
    frame = frame.rename(columns=shown)
    return _Table.of(frame.astype({GROUP: str, "workload": str}),
                     {shown[c]: units[c] for c in cols}, text_columns=2)


def _events(ctx: _Context) -> _Table | None:
    events = ctx.tables.get("events")
    if events is None or events.empty:
        return None
    runs = events.groupby(GROUP, observed=True)["run_id"].nunique()
    counts = events.groupby(["kind", GROUP], observed=True).size().unstack(GROUP)
    counts = (counts / runs).reindex(columns=[g for g in ctx.grouping.order if g in runs])
    counts.columns = [str(c) for c in counts.columns]
    counts.index.name = "kind"
    return _Table.of(counts.fillna(0.0), index=True)


def _groups_table(grouping: Groups) -> _Table | None:
    if not grouping.keys:
        return None
    rows = [[g, *(str(grouping.values[g].get(k)) for k in grouping.keys)]
            for g in grouping.order]
    return _Table(["group", *grouping.keys], rows, text_columns=len(grouping.keys) + 1)


def _runs_table(results: Results, status: str | None = None) -> _Table | None:
    runs = results.runs
    if status is not None:
        runs = runs[runs["status"] == status]
        runs = runs[["run_id", "seed", *results.params, "error"]]
    if runs.empty:
        return None
    return _Table.of(runs, text_columns=len(runs.columns))


# ---------------------------------------------------------------- the page
def _clear(out: Path) -> None:
    """Remove an earlier report from ``out`` (its page and PNGs), so that a report that
    fails now leaves none behind."""
    old = out / REPORT_HTML
    if old.is_file():
        old.unlink()
        for png in out.glob("*.png"):
            png.unlink()


def write_report(run_or_sweep_dir: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str] | None = None, *,
                 results: Results | None = None, runs: pd.DataFrame | None = None) -> Path:
    """Write ``report.html`` and one PNG per figure for the run(s) stored in ``run_or_sweep_dir``.

    ``run_or_sweep_dir``: a run folder (with ``manifest.json``) or a folder of runs (a
    sweep, or any mix of runs), as written by ``fleet-sim run --out`` / ``sweep``.
    ``out_dir``: where to write (default: ``<run_or_sweep_dir>/report``); an earlier
    report there is removed first. Returns the path of the HTML file, which embeds
    every image and needs no other file. ``results``, ``runs``: that folder's runs and
    their :func:`~fleet_sim.report.answer.per_run` frame if already at hand (the command
    line printed the answer from them), so they are not read and computed again.

    Raises FleetSimError if the folder holds no run.
    """
    source = Path(run_or_sweep_dir)
    out = Path(out_dir) if out_dir is not None else source / "report"
    if out.is_dir():
        _clear(out)
    results = store.load(source) if results is None else results
    out.mkdir(parents=True, exist_ok=True)
    ctx = _context(results, out)
    runs = answer.per_run(results, ctx.grouping) if runs is None else runs
    headline = answer.headline(results, runs)
    energy = answer.energy(results, ctx.grouping)
    answer_figures = _answer_figures(ctx, headline)
    _figures(ctx)
    figures = [f for f in ctx.made if f not in answer_figures]
    figures.sort(key=lambda f: f.name == HEATMAP)  # folded at the end of the page
    n = len(results.manifests)
    ok = int((results.runs["status"] == store.OK).sum())
    runs_note = int(headline["runs"].max()) if len(headline) else 0
    page = _TEMPLATES.get_template("report.html.j2").render(
        title=f"fleet_sim report — {source.resolve().name}",
        question=answer.question(results),
        what=(f"{n} runs ({ok} succeeded) in {len(ctx.grouping.order)} group(s)" if n > 1
              else "One run" + ("" if ok else " (failed)")),
        scenario=", ".join(sorted({str(m.get("source", "")) for m in results.manifests})),
        differ=ctx.grouping.describe(),
        versions=", ".join(sorted({str(m.get("fleet_sim_version", "?"))
                                   for m in results.manifests})),
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        source=str(source), n_runs=n,
        failed=_runs_table(results, store.FAILED),
        energy=_Table.of(energy, index=True, text_columns=2) if len(energy) else None,
        energy_note=(f"What consolidating costs and saves over {ctx.window()}, from each "
                     "run's summary (mean ± 95 % CI over the runs of a group): energy, "
                     "instance moves, hosts switched off and, for [traces] runs, the SLA "
                     "figures (docs/reference.md, summary table)."),
        headline=_Table.of(answer.headline_table(headline)) if len(headline) else None,
        headline_note=(f"Job (request-serving) workloads over {ctx.window()}: the 99th "
                       "percentile response time and mean slowdown of each run, "
                       + (f"mean ± 95 % CI over {runs_note} runs per group" if runs_note > 1
                          else "one run per group")
                       + "; Δ is the paired difference from the reference group (runs with "
                       "the same seed share arrivals and spikes), mean ± 95 % CI over seeds."),
        answer_figures=answer_figures,
        differences=(_Table.of(answer.differences_table(answer.differences(results, runs)))
                     if len(ctx.grouping.order) > 2 else None),
        summaries=_summaries(ctx), problems=ctx.problems, figures=figures,
        workloads=_workloads(ctx),
        workloads_note=(f"Per workload over {ctx.window()}, mean over the runs of each group; "
                        "guest-os workloads are the VMs' own operating systems."),
        events=_events(ctx), groups_table=_groups_table(ctx.grouping),
        config=next((config_toml.dumps(m["config"]) for m in results.manifests
                     if m.get("status") == store.OK and m.get("config")), ""),
        runs=_runs_table(results) if n > 1 else None,
    )
    path = out / REPORT_HTML
    path.write_text(page, encoding="utf-8")
    return path
