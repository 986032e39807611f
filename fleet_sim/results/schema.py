"""Every result table's columns: name, dtype, unit and meaning.

This module is the single source: :mod:`fleet_sim.results.tables` conforms every
frame to it, the tests check produced frames against it, and the reference page
of output columns is generated from :func:`markdown`.

Series tables (``hosts``, ``workloads``, ``instances``, ``links``) hold change
points: a row's values hold from its ``t`` until the next row of the same key
(or the end of the run). Tables from many runs concatenate; :data:`RUN_COLUMNS`
(plus one column per swept key path, named by that path) tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

#: dtype names used below (pandas ``astype`` strings; "str" is pandas' string dtype)
FLOAT, INT, STR = "float64", "int64", "str"


@dataclass(frozen=True)
class Column:
    """One column: ``name``, pandas ``dtype``, ``unit`` ("" if none) and ``description``."""

    name: str
    dtype: str
    unit: str
    description: str


@dataclass(frozen=True)
class Table:
    """One table: its ``columns``, the ``key`` columns that identify a series (with
    ``t``, at most one row per key and time survives), and a one-line ``description``."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(c.name for c in self.columns)

    def dtypes(self) -> dict[str, str]:
        """Column name → dtype name."""
        return {c.name: c.dtype for c in self.columns}


def _c(name: str, dtype: str, unit: str, description: str) -> Column:
    return Column(name, dtype, unit, description)


_T = _c("t", FLOAT, "s", "time of the change; values hold until the next row of the same key")
_HOST = _c("host", STR, "", "host name (`<type><index>`, e.g. `std003`)")
_DEMAND = _c("demand_cores", FLOAT, "cores", "CPU wanted, before any cap")
_ALLOC = _c("allocated_cores", FLOAT, "cores", "CPU received")
_THROTTLED = _c("throttled_cores", FLOAT, "cores",
                "unmet CPU above the unit's own caps (self-imposed)")
_CONTENTION = _c("contention_cores", FLOAT, "cores",
                 "capped demand minus what was received (neighbours' fault; steal for VMs)")

HOSTS = Table("hosts", "host × change: CPU, power and RAM of each server", (
    _T, _HOST,
    _c("cpu_used_cores", FLOAT, "cores", "cores busy"),
    _c("cpu_capacity_cores", FLOAT, "cores", "physical cores of the host"),
    _c("cpu_utilization", FLOAT, "fraction", "cpu_used_cores / cpu_capacity_cores"),
    _c("power_w", FLOAT, "W", "electrical power drawn at the wall"),
    _c("ram_used_mib", FLOAT, "MiB", "RAM in use or reserved"),
), key=("host",))

WORKLOADS = Table("workloads", "workload × change: CPU demand and allocation", (
    _T,
    _c("workload", STR, "", "workload name"),
    _HOST,
    _c("instance", STR, "", "instance (VM, container or process) the workload runs in"),
    _DEMAND, _ALLOC, _THROTTLED, _CONTENTION,
), key=("workload", "host", "instance"))

INSTANCES = Table("instances", "instance × change: CPU of each VM, container or process", (
    _T,
    _c("instance", STR, "", "instance name"),
    _HOST, _DEMAND, _ALLOC, _THROTTLED, _CONTENTION,
), key=("instance", "host"))

JOBS = Table("jobs", "job: one row per job that arrived (failed and unfinished jobs have "
             "finish = NaN)", (
    _c("job_id", INT, "", "id of the job within its workload (0, 1, 2, …)"),
    _c("workload", STR, "", "workload name (`<replica>.<workload>`; a service's: "
       "`<app>.<workload>`)"),
    _c("host", STR, "", "host the job ran on last (\"\" if it never reached a replica)"),
    _c("replica", STR, "", "app replica (instance) the job ran on last (\"\" if none)"),
    _c("arrival", FLOAT, "s", "arrival time"),
    _c("start", FLOAT, "s", "time the job first received CPU (NaN if never)"),
    _c("finish", FLOAT, "s", "completion time (NaN unless finished)"),
    _c("outcome", STR, "", "finished; failed (lost with its replica, or no replica was "
       "healthy); unfinished (still open at the end)"),
    _c("work_core_s", FLOAT, "core-s", "work of the job at nominal speed"),
    _c("max_cores", FLOAT, "cores", "most cores the job can use at once"),
    _c("response_time_s", FLOAT, "s", "finish − arrival"),
    _c("slowdown", FLOAT, "ratio",
       "response time / (work_core_s / (max_cores × host speed)); 1 = never slowed down"),
))

EVENTS = Table("events", "event: discrete happenings (boot, oom_kill, host_failure, …)", (
    _T,
    _c("kind", STR, "", "what happened (oom_kill, restart, boot, healthy, failed, …)"),
    _c("entity", STR, "", "who it happened to (dotted name)"),
    _c("host", STR, "", "the host it happened on (\"\" if none)"),
    _c("kernel", STR, "", "admit: the OS the instance runs on (its host, or a VM for a "
       "guest)"),
    _c("cpu_cores", FLOAT, "cores", "admit: CPU committed on the host (overheads included)"),
    _c("ram_mib", FLOAT, "MiB", "admit: RAM committed (overheads included)"),
    _c("duration_s", FLOAT, "s", "start/boot/healthy: time from launch; restart: back-off; "
       "cpu_stat: throttled time"),
    _c("count", FLOAT, "", "oom_kill/killed: jobs lost; restart: attempt; cpu_stat: "
       "throttled CFS periods"),
    _c("detail", STR, "", "anything else, as text"),
))

LINKS = Table("links", "link × change: network links sharing image transfers", (
    _T,
    _c("link", STR, "", "link name"),
    _c("allocated_mb_s", FLOAT, "MB/s", "bandwidth in use"),
    _c("bytes_mb", FLOAT, "MB", "data carried so far"),
), key=("link",))

TIMELINE = Table("timeline", "instance: a rollout's timeline (NaN: phase not reached)", (
    _c("instance", STR, "", "instance name"),
    _HOST,
    _c("version", STR, "", "app version the instance runs"),
    _c("queued", FLOAT, "s", "time the rollout asked for the instance"),
    _c("transfer_start", FLOAT, "s", "image transfer or install began"),
    _c("transfer_end", FLOAT, "s", "image transfer or install ended"),
    _c("started", FLOAT, "s", "instance started; health check began"),
    _c("healthy", FLOAT, "s", "health check passed"),
    _c("failed", FLOAT, "s", "instance failed for good"),
    _c("stopped", FLOAT, "s", "instance retired or discarded"),
    _c("attempts", INT, "", "provisioning attempts"),
    _c("failure", STR, "", "reason of the last failure (empty if none)"),
))

CAPACITY = Table("capacity", "change: instances serving during a rollout, per version", (
    _T,
    _c("app", STR, "", "the app rolled out"),
    _c("old_healthy", INT, "", "healthy instances of the old version"),
    _c("new_healthy", INT, "", "healthy instances of the new version"),
))

ROLLOUT_SUMMARY = Table("rollout_summary", "rollout: headline figures of each rollout", (
    _c("app", STR, "", "the app rolled out"),
    _c("at_s", FLOAT, "s", "when the rollout began"),
    _c("makespan_s", FLOAT, "s",
       "from at_s until the last instance is healthy, failed or stopped (NaN if the "
       "rollout had not ended by the end of the run)"),
    _c("min_serving_fraction", FLOAT, "fraction",
       "fewest healthy instances during the rollout / replicas"),
    _c("new_healthy", INT, "", "new instances that became healthy"),
    _c("new_failed", INT, "", "new instances that failed for good"),
    _c("instance_median_s", FLOAT, "s", "median time from queued to healthy of new instances"),
    _c("registry_mb", FLOAT, "MB", "data sent by the registry during the rollout"),
    _c("peer_upload_mb", FLOAT, "MB", "data sent by peers (p2p) during the rollout"),
    _c("delivered_mb", FLOAT, "MB", "data delivered to hosts during the rollout"),
    _c("into_racks_mb", FLOAT, "MB", "data carried into racks from the core during it"),
    _c("peak_registry_mb_s", FLOAT, "MB/s",
       "peak registry upload rate during it (NaN unless links are recorded)"),
    _c("outcome", STR, "", "how the rollout ended (e.g. completed, rolled back)"),
))

FLEET = Table("fleet", "host: the inventory of the run, one row per host", (
    _HOST,
    _c("type", STR, "", "host type from the scenario file"),
    _c("cores", FLOAT, "cores", "physical cores"),
    _c("speed", FLOAT, "ratio", "per-core speed relative to nominal"),
    _c("ram_mib", FLOAT, "MiB", "RAM"),
    _c("monthly_cost_usd", FLOAT, "$", "cost of the host per 30-day month"),
))

SUMMARY = Table("summary", "run: headline figures (NaN where a table was not recorded)", (
    _c("duration_s", FLOAT, "s", "simulated time"),
    _c("window_s", FLOAT, "s", "length of the statistics window [warmup_s, duration_s]"),
    _c("hosts", FLOAT, "", "hosts in the fleet"),
    _c("cpu_capacity_cores", FLOAT, "cores", "physical cores of the fleet"),
    _c("cpu_utilization_mean", FLOAT, "fraction",
       "time-weighted mean of fleet CPU used / capacity over the window"),
    _c("cpu_utilization_p99", FLOAT, "fraction",
       "time-weighted 99th percentile of fleet CPU used / capacity"),
    _c("host_utilization_max", FLOAT, "fraction",
       "largest per-host time-weighted mean utilization (imbalance)"),
    _c("energy_kwh", FLOAT, "kWh", "energy drawn by the fleet over the window"),
    _c("hosts_on_mean", FLOAT, "hosts", "time-weighted mean number of hosts drawing power "
       "(power_w ≠ 0: on, or switching on at a nonzero switch_on_w) over the window; NaN "
       "for a [traces] study, whose summary comes from its own record"),
    _c("cost_usd", FLOAT, "$", "fleet cost prorated to the window"),
    _c("demand_core_s", FLOAT, "core-s", "CPU wanted by all workloads"),
    _c("allocated_core_s", FLOAT, "core-s", "CPU received by all workloads"),
    _c("throttled_core_s", FLOAT, "core-s", "unmet CPU above own caps"),
    _c("contention_core_s", FLOAT, "core-s", "unmet CPU taken by neighbours"),
    _c("unmet_core_s", FLOAT, "core-s", "demand_core_s − allocated_core_s"),
    _c("satisfied_fraction", FLOAT, "fraction", "allocated_core_s / demand_core_s"),
    _c("jobs_arrived", FLOAT, "", "jobs that arrived during the run"),
    _c("jobs_finished", FLOAT, "", "jobs finished during the run"),
    _c("response_time_mean_s", FLOAT, "s", "mean response time of jobs finished in the window"),
    _c("response_time_p50_s", FLOAT, "s", "median response time"),
    _c("response_time_p99_s", FLOAT, "s", "99th percentile response time"),
    _c("slowdown_mean", FLOAT, "ratio", "mean slowdown"),
    _c("lifecycle_events", FLOAT, "", "rows of the events table: boots, installs, starts, "
       "OOM kills, restarts, failures, … (not simulation events)"),
    _c("migrations", FLOAT, "", "[traces] runs: guest moves (live migrations) started in "
       "the window; [[apps]] runs with [consolidation]: instance moves carried out in the "
       "run (NaN otherwise: without [consolidation], with dvfs, under bare metal)"),
    _c("slatah", FLOAT, "fraction", "[traces] runs: SLA violation time per active host: "
       "time hosts were on and delivered less CPU than asked ÷ time they were on, summed "
       "over hosts"),
    _c("pdm", FLOAT, "fraction", "[traces] runs: performance degradation due to migrations: "
       "CPU guests asked for and did not get while moving ÷ all the CPU they asked for"),
    _c("slav", FLOAT, "fraction", "[traces] runs: SLA violation, slatah × pdm"),
    _c("host_shutdowns", FLOAT, "", "[traces] runs: switches of a host from on to off "
       "(a host off from the start counts one, as in CloudSim); [[apps]] runs with "
       "[consolidation]: hosts emptied and switched off in the run"),
))

WORKLOAD_SUMMARY = Table("workload_summary", "workload: figures per workload over the window", (
    _c("workload", STR, "", "workload name"),
    _c("demand_core_s", FLOAT, "core-s", "CPU wanted"),
    _c("allocated_core_s", FLOAT, "core-s", "CPU received"),
    _c("throttled_core_s", FLOAT, "core-s", "unmet CPU above own caps"),
    _c("contention_core_s", FLOAT, "core-s", "unmet CPU taken by neighbours"),
    _c("unmet_core_s", FLOAT, "core-s", "demand − allocated"),
    _c("satisfied_fraction", FLOAT, "fraction", "allocated / demand"),
    _c("jobs_finished", FLOAT, "", "jobs finished in the window"),
    _c("response_time_p50_s", FLOAT, "s", "median response time"),
    _c("response_time_p99_s", FLOAT, "s", "99th percentile response time"),
    _c("slowdown_mean", FLOAT, "ratio", "mean slowdown"),
))

TABLES: dict[str, Table] = {t.name: t for t in (
    HOSTS, WORKLOADS, INSTANCES, JOBS, EVENTS, LINKS, TIMELINE, CAPACITY, FLEET, SUMMARY,
    WORKLOAD_SUMMARY, ROLLOUT_SUMMARY)}
"""Every table a run produces, by name."""

RUN_COLUMNS: tuple[Column, ...] = (
    _c("run_id", STR, "", "content hash of the resolved config and seed (the run's folder)"),
    _c("seed", INT, "", "seed of the run"),
    _c("replication", INT, "", "index of the replication within its sweep point (0 for a run)"),
)
"""Columns that identify the run, added in front of every table of a Results."""


def markdown() -> str:
    """The reference of every table and column, as Markdown."""
    out = ["# Output columns", "", "Generated from `fleet_sim/results/schema.py`.", ""]
    out += ["Every table also starts with " + ", ".join(f"`{c.name}`" for c in RUN_COLUMNS)
            + " and one column per swept key path.", ""]
    for table in TABLES.values():
        out += [f"## `{table.name}`", "", table.description, "",
                "| column | dtype | unit | description |", "| --- | --- | --- | --- |"]
        out += [f"| `{c.name}` | {c.dtype} | {c.unit} | {c.description} |" for c in table.columns]
        out.append("")
    return "\n".join(out)
