"""``fleet-sim``: run, sweep, report, validate and list scenario files; replay job traces.

Every subcommand has ``--help`` with examples. Problems with a scenario file are
reported as ``file: key.path: problem (allowed: …)`` lines on stderr with exit
status 2, never as a traceback. Progress bars appear only on a terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_sim.errors import ConfigError, ConfigErrors, FleetSimError

if TYPE_CHECKING:
    import pandas as pd

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_RUN_EXAMPLES = """examples:
  fleet-sim run experiments/demo.toml
  fleet-sim run demo --seed 7 --out results/demo-seed7
  fleet-sim run demo --set hosting.mode=vm --set run.duration_s=600
  fleet-sim run demo --set apps.web.replicas=8 --set 'apps[1].workloads[0].height_cores=6'
"""
_SWEEP_EXAMPLES = """examples:
  fleet-sim sweep demo --param hosting.mode=baremetal,vm,container --replications 5
  fleet-sim sweep demo --param hosting.mode=vm,container --param apps.web.replicas=2,4 \\
      --replications 3 --workers 2 --out results/demo-sweep
  fleet-sim sweep demo --param hosting.mode=vm,container --dask tcp://scheduler:8786

A sweep is resumable: run the same command again and only missing runs execute.
"""
_REPORT_EXAMPLES = """examples:
  fleet-sim report results/demo-run
  fleet-sim report results/demo-sweep --out /tmp/demo-report
  fleet-sim report results/demo-sweep --text
"""
_VALIDATE_EXAMPLES = """examples:
  fleet-sim validate experiments/demo.toml
  fleet-sim validate demo --set hosting.mode=vm
"""


def _para(text: str) -> str:
    """A command's description, wrapped (the formatter prints descriptions as given)."""
    return textwrap.fill(text, width=79)


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(
        prog="fleet-sim", formatter_class=formatter,
        description="Simulate server fleets under bare metal, VMs and containers.",
        epilog="examples:\n  fleet-sim list\n  fleet-sim validate demo\n  fleet-sim run demo\n"
               "  fleet-sim sweep demo --param hosting.mode=baremetal,vm,container "
               "--replications 3\n  fleet-sim report results/demo-sweep\n\n"
               "Run 'fleet-sim COMMAND --help' for the options of a command.")
    ap.add_argument("--version", action="version", version=f"fleet-sim {_version()}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run one scenario and store its tables",
                         description=_para("Run one scenario file; store its tables (Parquet) and "
                         "manifest under OUT/<run id>/ and print its summary."),
                         epilog=_RUN_EXAMPLES, formatter_class=formatter)
    _scenario_args(run)
    run.add_argument("--seed", type=int, help="override run.seed")
    run.add_argument("--out", type=Path,
                     help="results folder (default results/<file stem>-run)")

    sweep = sub.add_parser("sweep", help="run a grid of parameters × replications",
                           description=_para("Run every combination of the --param values, each "
                           "--replications times with independent seeds derived from "
                           "run.seed; print the mean and 95% confidence interval of each "
                           "summary metric."), epilog=_SWEEP_EXAMPLES, formatter_class=formatter)
    _scenario_args(sweep)
    sweep.add_argument("--param", action="append", default=[], metavar="KEY.PATH=V1,V2",
                       help="an axis of the sweep (repeatable)")
    sweep.add_argument("--replications", "-r", type=int, default=1, metavar="R",
                       help="runs per point (default 1)")
    sweep.add_argument("--seed", type=int, help="override the base seed run.seed")
    sweep.add_argument("--out", type=Path,
                       help="results folder (default results/<file stem>-sweep)")
    sweep.add_argument("--report", action="store_true",
                       help="also write the HTML report (as 'fleet-sim report OUT' does)")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="local processes (default: one per core; 1: in this process)")
    where.add_argument("--dask", metavar="ADDRESS",
                       help="use an existing Dask cluster, e.g. tcp://host:8786")

    report = sub.add_parser("report", help="summarize the runs stored in a folder",
                            description=_para("Print the summary of the runs stored in DIR (one "
                            "run, or the mean and 95% CI per sweep point) and write an HTML "
                            "report with figures."), epilog=_REPORT_EXAMPLES,
                            formatter_class=formatter)
    report.add_argument("dir", type=Path, metavar="DIR", help="a results folder")
    report.add_argument("--out", type=Path, help="where to write report.html and the "
                        "figures (default DIR/report)")
    report.add_argument("--text", action="store_true", help="print only, no HTML")

    validate = sub.add_parser("validate", help="check a scenario file without running it",
                              description=_para("Check a scenario file: keys, types, values, "
                              "combinations, and that every app fits some host."),
                              epilog=_VALIDATE_EXAMPLES, formatter_class=formatter)
    _scenario_args(validate)

    sub.add_parser("list", help="list the shipped experiments and their questions",
                   description=_para("List the experiments shipped with fleet_sim, with the "
                   "question each answers, and the folder they are installed in."),
                   epilog="example:\n  fleet-sim list", formatter_class=formatter)

    sub.add_parser("replay", help="replay a job trace (see 'fleet-sim replay --help')",
                   add_help=False, description="Replay a job trace.")
    return ap


def _scenario_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE",
                   help="scenario file, or the name of a shipped experiment (fleet-sim list)")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   metavar="KEY.PATH=VALUE", help="override a key (repeatable)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _version() -> str:
    from fleet_sim.scenarios.runner import version

    return version()


# ---------------------------------------------------------------- formatting
def _summary_lines(summary, table: str) -> list[str]:
    """A one-row summary as 'metric  value  unit' lines; the metrics this run does not
    measure (NaN: e.g. ``migrations`` of a run that does not consolidate) left out."""
    import pandas as pd

    from fleet_sim.report.numbers import fmt, unit_label
    from fleet_sim.results.schema import TABLES

    row = summary.iloc[0]
    columns = [c for c in TABLES[table].columns if not pd.isna(row[c.name])]
    width = max((len(c.name) for c in columns), default=0)
    lines = []
    for c in columns:
        value = fmt(row[c.name], c.unit)
        unit = "" if value.endswith("%") else unit_label(c.unit)  # the value says it
        lines.append(f"  {c.name:<{width}}  {value:>10}  {unit}".rstrip())
    return lines


def _summary_table(results) -> str:
    """Metrics × groups of runs (runs grouped by what differs in their configs):
    'mean ± ci95' cells; metrics equal in every run left out."""
    from fleet_sim.report.groups import groups, with_groups
    from fleet_sim.report.numbers import group_table

    table = "rollout_summary" if "rollout_summary" in results.tables else "summary"
    frame = results.table(table)
    if frame.empty:
        return "  (no finished runs)"
    grouping = groups(results)
    wide = group_table(with_groups(frame, grouping), table, grouping.order,
                       keep_constant=False)
    if wide.empty:
        return "  (every metric is the same in every run)"
    return wide.to_string()


def _print_errors(error: FleetSimError) -> int:
    errors = error.errors if isinstance(error, ConfigErrors) else [error]
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return EXIT_USAGE if isinstance(error, ConfigError | ConfigErrors) else EXIT_FAILED


# ---------------------------------------------------------------- commands
def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.quiet else None


def cmd_run(args: argparse.Namespace) -> int:
    from fleet_sim.scenarios import runner

    out = args.out or runner.default_out(args.file, "run")
    res = runner.run(args.file, seed=args.seed, out=out, set=args.overrides,
                     progress=_progress(args), reraise=False)
    m = res.manifest
    config = m["config"]
    rollouts = len(config.get("rollouts") or [])
    what = f"{config['run']['duration_s']:g} s" + (
        f", {rollouts} rollout{'s' * (rollouts > 1)}" if rollouts else "")
    head = f"run {m['run_id']}  seed {m['seed']}  {config['hosting']['mode']}  {what}"
    if m["status"] != "ok":
        exc = m["exception"]
        print(f"{head}  FAILED after {m['wall_time_s']:.2f} s")
        print(f"error: the run failed: {exc['type']}: {exc['message']}", file=sys.stderr)
        print(f"nothing stored but its manifest (with the traceback): "
              f"{Path(m['path']) / 'manifest.json'}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{head} simulated in {m['wall_time_s']:.2f} s")
    print(f"stored in {m['path']}")
    _print_run(res)
    return EXIT_OK


def _print_run(res) -> None:
    """The summary of a single finished run, and its figures per workload."""
    tables = res.manifest["tables"]
    print("\nsummary")
    print("\n".join(_summary_lines(res.table("summary"), "summary")))
    if "rollout_summary" in tables:
        rollouts = res.table("rollout_summary")
        for i in range(len(rollouts)):
            print(f"\nrollout_summary ({rollouts['app'].iloc[i]} at "
                  f"{rollouts['at_s'].iloc[i]:g} s)")
            print("\n".join(_summary_lines(rollouts.iloc[[i]], "rollout_summary")))
    if tables.get("workload_summary"):
        print("\n".join(_workload_lines(res.workload_summary)))


#: per-workload rows a run prints before it shows apps (replicas together) instead
MAX_WORKLOAD_ROWS = 20


def _workload_lines(ws) -> list[str]:
    """The run's per-workload figures; an app's replicas together when there are many."""
    from fleet_sim.report.answer import app_workload
    from fleet_sim.report.numbers import fmt
    from fleet_sim.results.schema import WORKLOAD_SUMMARY

    units = {c.name: c.unit for c in WORKLOAD_SUMMARY.columns} | {"replicas": ""}
    cols = ["workload", "allocated_core_s", "throttled_core_s", "contention_core_s",
            "satisfied_fraction", "jobs_finished", "response_time_p99_s"]
    title = "per workload"
    frame = ws[cols]
    if len(ws) > MAX_WORKLOAD_ROWS:
        title = ("per app workload (replicas together; p99: a service's, else the slowest "
                 "replica's; each replica: results.workload_summary)")
        app = ws["workload"].map(app_workload)
        # a service's own row (its requests, all replicas together) is not a replica
        by = ws.assign(workload=app, replica=app != ws["workload"]).groupby("workload",
                                                                            sort=True)
        frame = by[["allocated_core_s", "throttled_core_s", "contention_core_s",
                    "jobs_finished"]].sum()
        frame.insert(0, "replicas", by["replica"].sum().clip(lower=1).astype(int))
        demand = by["demand_core_s"].sum()
        frame.insert(4, "satisfied_fraction", (frame["allocated_core_s"] / demand).where(
            demand > 0))
        frame["response_time_p99_s"] = by["response_time_p99_s"].max()
        frame = frame.reset_index()
        cols = list(frame.columns)
    shown = frame.assign(**{c: [fmt(v, units[c]) for v in frame[c]] for c in cols[1:]})
    return ["", title, shown.to_string(index=False)]


def cmd_sweep(args: argparse.Namespace) -> int:
    from fleet_sim.scenarios import runner

    out = args.out or runner.default_out(args.file)
    res = runner.sweep(args.file, args.param, args.replications, seed=args.seed, out=out,
                       set=args.overrides, workers=args.workers, dask=args.dask,
                       progress=_progress(args))
    info = res.info
    print(f"sweep {args.file}: {info['planned']} runs in {out}: ran {info['ran']}, "
          f"skipped {info['skipped']} already stored, {len(info['failed'])} failed")
    for line in info["failed"]:
        print(f"  failed {line}", file=sys.stderr)
    seeds = sorted({(m.get("replication", 0), m["seed"]) for m in res.manifests})
    print("seeds: " + ", ".join(f"replication {r} = {s}" for r, s in seeds)
          + " (replication 0 uses run.seed)")
    if info["ran"] + info["skipped"] > len(info["failed"]):
        _print_answer(res)
    if args.report:
        from fleet_sim.report.html import write_report

        print(f"\nreport: {write_report(out)}")
    return EXIT_FAILED if info["failed"] else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from fleet_sim.report.groups import groups
    from fleet_sim.results.store import load

    res = load(args.dir)
    runs = res.runs
    bad = runs["status"] != "ok"
    grouping = groups(res)
    print(f"{args.dir}: {len(runs)} runs, {int(bad.sum())} failed; {grouping.describe()}")
    if bad.any():
        print(f"error: {int(bad.sum())} run(s) failed and are left out of every number:",
              file=sys.stderr)
        print(runs.loc[bad, ["run_id", "error"]].to_string(index=False), file=sys.stderr)
    if bad.all():
        return EXIT_FAILED
    runs = _print_answer(res)
    if not args.text:
        from fleet_sim.report.html import write_report

        print(f"\nreport: {write_report(args.dir, args.out, results=res, runs=runs)}")
    return EXIT_FAILED if bad.any() else EXIT_OK


def _print_answer(res) -> pd.DataFrame:
    """The experiment's question, the answer in numbers, then the summary: of the one
    run, or mean ± 95 % CI per group of runs (a header says which). Returns the answer's
    per-run frame (:func:`fleet_sim.report.answer.per_run`)."""
    from fleet_sim.report import answer
    from fleet_sim.report.groups import groups

    question = answer.question(res)
    if question:
        print(f"question: {question}")
    grouping = groups(res)
    energy = answer.energy(res, grouping)
    if len(energy):
        print("\nanswer: energy and moves per group (mean ± 95% CI where a group has "
              "several runs)")
        print(energy.to_string())
    runs = answer.per_run(res, grouping)
    headline = answer.headline(res, runs)
    if len(headline):
        print("\nanswer: job workloads' p99 response time and mean slowdown per group, "
              "mean ± 95% CI; Δ: paired difference (same seeds)")
        print(answer.headline_table(headline).to_string(index=False))
    ok = res.runs[res.runs["status"] == "ok"]
    if len(ok) == 1:
        _print_run(res)
        return runs
    replicated = ok.groupby(res.params, dropna=False).size().max() > 1 if res.params \
        else len(ok) > 1
    print("\nmean ± 95% CI half-width across replications" if replicated
          else "\none run per group (--replications 2 or more gives 95% CIs)")
    print(_summary_table(res))
    return runs


def cmd_validate(args: argparse.Namespace) -> int:
    from fleet_sim.scenarios import config as cfg
    from fleet_sim.scenarios import runner

    scenario, over = runner.prepare(args.file, overrides=args.overrides)
    config = scenario.validate(over)
    question = cfg.question(scenario.label) if Path(scenario.label).is_file() else ""
    hosts = sum(g.count for g in config.fleet.hosts)
    cores = sum(g.count * g.cores for g in config.fleet.hosts)
    replicas = sum(a.replicas for a in config.apps)
    what = f"{len(config.apps)} apps ({replicas} replicas)" + (
        f", {len(config.rollouts)} rollout{'s' * (len(config.rollouts) > 1)}"
        if config.rollouts else "")
    print(f"ok: {scenario.label}: {hosts} hosts ({cores:g} cores), {what}, "
          f"mode {config.hosting.mode}, {config.run.duration_s:g} s")
    if question:
        print(f"question: {question}")
    from fleet_sim.scenarios.estimate import estimate

    print(estimate(config))
    return EXIT_OK


def cmd_list(_args: argparse.Namespace) -> int:
    from fleet_sim.scenarios import config as cfg
    from fleet_sim.scenarios.runner import EXPERIMENTS_DIR

    files = sorted(EXPERIMENTS_DIR.rglob("*.toml")) if EXPERIMENTS_DIR.is_dir() else []
    if not files:
        print(f"no experiments found in {EXPERIMENTS_DIR}")
        return EXIT_FAILED
    names = [str(f.relative_to(EXPERIMENTS_DIR).with_suffix("")) for f in files]
    width = max(len(n) for n in names)
    for name, file in zip(names, files, strict=True):
        print(f"{name:<{width}}  {cfg.question(file)}")
    print(f"\n({EXPERIMENTS_DIR}; run one with: fleet-sim run NAME)")
    return EXIT_OK


COMMANDS = {"run": cmd_run, "sweep": cmd_sweep, "report": cmd_report,
            "validate": cmd_validate, "list": cmd_list}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fleet-sim`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "replay":
        from fleet_sim.replay import main as replay_main

        return replay_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, ConfigErrors, FleetSimError) as e:
        return _print_errors(e)
    except BrokenPipeError:  # e.g. `fleet-sim list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: finished runs are stored; run the same command again to resume",
              file=sys.stderr)
        return 130
    except Exception as e:  # a bug: one line, not a traceback (FLEET_SIM_DEBUG=1 shows it)
        if os.environ.get("FLEET_SIM_DEBUG"):
            raise
        print(f"error: internal error in fleet-sim {args.command}: {type(e).__name__}: {e} "
              "(this is a bug; FLEET_SIM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
