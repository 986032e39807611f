"""Consolidation: how much energy does each policy save on a PlanetLab day, at what SLA cost?

The experiment is ``experiments/consolidation.toml``: CloudSim 3.0.3's PlanetLab study
(800 HP ML110 G4/G5 hosts, one VM per trace of the day, a round every 300 s; docs/model.md
§12). This script runs it over ``--set`` overrides: the baselines NPA and DVFS and the
20 pairs of overload detector (THR 0.8, IQR 1.5, MAD 2.5, LR 1.2, LRR 1.2) and VM
selection (MMT, MC, MU, RS) on one day, then the medians over the ten bundled days, then
per hosting mode (VMs migrate live, containers stop–pull–start, bare-metal apps never
move) energy against SLA for one policy, with a figure of the last table.

    .venv/bin/python experiments/consolidation/consolidation.py [--day 20110303]
        [--policies npa,dvfs,thr-mmt,…] [--days all|none|20110303,…] [--mode-policy lr-mmt]
        [--set KEY=VALUE …] [--figure PATH] [--runs consolidation_runs.csv] [--jobs 2]

``--set`` applies to every run (e.g. ``traces.vms=100 fleet.hosts.g4.count=60
fleet.hosts.g5.count=60`` for a small version). Every finished run of the one-day table
and of the medians is appended to ``--runs`` (a CSV keyed by policy, day, mode and the
``--set`` overrides, with the fingerprint of the code that made it, ``STUDY_SOURCES``);
runs already there from the same code are not run again, so an interrupted study resumes
where it stopped, and a changed simulator runs them anew. ``--jobs``: runs at once
(separate processes).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

import fleet_sim as fs
from fleet_sim.scenarios.traces import planetlab_days

SCENARIO = Path(__file__).resolve().parents[1] / "consolidation.toml"
FIGURE = Path("consolidation_modes.png")  #: default figure path (current directory)
RUNS = Path("consolidation_runs.csv")  #: default store of finished runs (current directory)
DETECTORS = {"thr": 0.8, "iqr": 1.5, "mad": 2.5, "lr": 1.2, "lrr": 1.2}
SELECTIONS = ("mmt", "mc", "mu", "rs")
POLICIES = ("npa", "dvfs", *(f"{d}-{s}" for d in DETECTORS for s in SELECTIONS))
FIGURES = ["energy_kwh", "migrations", "slatah", "pdm", "slav", "host_shutdowns"]
MODES = ("vm", "container", "baremetal")


def policy_overrides(policy: str) -> dict[str, Any]:
    """The ``--set`` keys of ``policy`` (the detector's parameter as in the paper)."""
    over: dict[str, Any] = {"consolidation.policy": policy}
    detector = policy.split("-")[0]
    if detector in DETECTORS:
        over["consolidation.threshold"] = DETECTORS[detector]
    return over


#: what the study's figures come from, in the fleet_sim package: the dynamic fleet and
#: its moves, the network and registry they use, the policies, the figures, the scenario
#: path and the bundled traces (not the CPU-tree scheduler and workloads of app fleets)
STUDY_SOURCES = ("hosting/consolidation.py", "hosting/migration.py", "hosting/defaults.py",
                 "images", "model/protocols.py", "model/views.py", "numerics/power.py",
                 "policies/consolidation.py", "policies/registry.py",
                 "results/consolidation.py", "scenarios/build.py", "scenarios/config.py",
                 "scenarios/consolidation.py", "scenarios/traces.py", "data")


def code_fingerprint() -> str:
    """The first 12 hex digits of the SHA-256 of the study's code and data
    (:data:`STUDY_SOURCES` and the scenario file: each file's name and bytes, folders
    in path order): a stored run counts only for the code that made it."""
    root = Path(fs.__file__).resolve().parent
    files = [SCENARIO]
    for name in STUDY_SOURCES:
        path = root / name
        files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix != ".pyc")
                     if path.is_dir() else [path])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


CODE = code_fingerprint()


def point(policy: str, day: str, mode: str = "vm", extra: Mapping[str, Any] | None = None,
          seed: int | None = None) -> dict[str, Any]:
    """One row: the summary figures of ``policy`` on ``day`` under ``mode``, and the wall
    and CPU time of the run (s)."""
    over = {**policy_overrides(policy), "traces.day": day, "hosting.mode": mode,
            **(extra or {})}
    started, cpu = time.perf_counter(), time.process_time()
    res = fs.run(SCENARIO, seed=seed, set=over, progress=False)
    row = res.summary.iloc[0]
    return {"policy": policy, "day": day, "mode": mode,
            **{f: float(row[f]) for f in FIGURES},
            "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}


class RunStore:
    """Finished runs, one CSV row each (the columns of :func:`point`, ``set``: the
    ``--set`` overrides as JSON, ``code``: :data:`CODE` of the run), appended as they
    finish; None: kept in memory only. Rows of other code are kept in the file but not
    used (``stale`` counts them)."""

    TEXT = ("policy", "day", "mode", "set", "code")

    def __init__(self, path: Path | None):
        self.path = path
        self.rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.stale = 0
        if path is not None and path.exists():
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    parsed = {k: (v if k in self.TEXT else float(v)) for k, v in row.items()}
                    if parsed.get("code") != CODE:
                        self.stale += 1
                        continue
                    self.rows[self.key(parsed)] = parsed

    @staticmethod
    def key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
        return (str(row["policy"]), str(row["day"]), str(row["mode"]), str(row["set"]))

    def add(self, row: dict[str, Any]) -> None:
        new = self.path is None or not self.path.exists()
        columns = list(row)
        if not new:
            assert self.path is not None
            with self.path.open(newline="") as f:
                columns = next(csv.reader(f))
            if set(columns) != set(row):
                raise ValueError(f"{self.path}: its columns {columns} are not a run's "
                                 f"{list(row)}; move it away to start a new store")
        self.rows[self.key(row)] = row
        if self.path is None:
            return
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, columns)
            if new:
                writer.writeheader()
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})


def _overrides_key(extra: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(extra or {}), sort_keys=True)


def _point(args: tuple[str, str, str, Mapping[str, Any] | None]) -> dict[str, Any]:
    policy, day, mode, extra = args
    return point(policy, day, mode, extra) | {"set": _overrides_key(extra), "code": CODE}


def runs(pairs: Iterable[tuple[str, str]], extra: Mapping[str, Any] | None = None,
         store: Path | None = None, jobs: int = 1) -> pd.DataFrame:
    """One row per (policy, day) of ``pairs`` (VMs), those missing from ``store`` run
    (``jobs`` at a time) and appended to it as each finishes."""
    book = RunStore(store)
    if book.stale:
        print(f"{store}: {book.stale} runs of other fleet_sim code are not used (this code: "
              f"{CODE})")
    todo = [(p, d, "vm", extra) for p, d in pairs
            if (p, d, "vm", _overrides_key(extra)) not in book.rows]
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for done in as_completed([pool.submit(_point, job) for job in todo]):
                book.add(done.result())
    else:
        for job in todo:
            book.add(_point(job))
    rows = [book.rows[(p, d, "vm", _overrides_key(extra))] for p, d in pairs]
    return pd.DataFrame(rows).drop(columns=["set", "code"])


def one_day(day: str, policies: Sequence[str] = POLICIES,
            extra: Mapping[str, Any] | None = None, store: Path | None = None,
            jobs: int = 1) -> pd.DataFrame:
    """One row per policy on ``day``."""
    return runs([(p, day) for p in policies], extra, store, jobs)


def medians(days: Sequence[str], policies: Sequence[str] = POLICIES,
            extra: Mapping[str, Any] | None = None, store: Path | None = None,
            jobs: int = 1) -> pd.DataFrame:
    """Per policy, the median of each figure over ``days``."""
    table = runs([(p, d) for d in days for p in policies], extra, store, jobs)
    out = table.groupby("policy", sort=False)[FIGURES].median().reset_index()
    return out.assign(days=len(days))


def per_mode(day: str, policy: str = "lr-mmt",
             extra: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Energy and SLA of ``policy`` on ``day`` per hosting mode, beside DVFS (no moves)."""
    rows = [point(policy, day, mode, extra) for mode in MODES]
    rows.append(point("dvfs", day, "vm", extra) | {"mode": "(dvfs, no moves)"})
    return pd.DataFrame(rows)


def figure(modes: pd.DataFrame, path: Path) -> Path:
    """Energy (kWh) against SLATAH and against PDM, one point per hosting mode."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    labels = {"vm": "VMs: live migration", "container": "containers: stop, pull, start",
              "baremetal": "bare metal: no moves", "(dvfs, no moves)": "DVFS baseline"}
    for ax, column, name in ((axes[0], "slatah", "SLATAH (% of active host time at 100 %)"),
                             (axes[1], "pdm", "PDM (% of CPU lost to moves)")):
        for k, (_, row) in enumerate(modes.iterrows()):
            x, y = row[column] * 100, row["energy_kwh"]
            ax.scatter(x, y, s=60, color=f"C{k}", label=labels.get(row["mode"], row["mode"]))
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("energy (kWh)")
    axes[1].legend(fontsize=8, loc="best")
    policy = modes["policy"].iloc[0].upper()
    fig.suptitle(f"{policy} per hosting mode, PlanetLab {modes['day'].iloc[0]}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> dict[str, pd.DataFrame]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="20110303")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--days", default="all", help="days of the medians: all, none, "
                        "or a comma-separated list")
    parser.add_argument("--mode-policy", default="lr-mmt")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--figure", type=Path, default=FIGURE)
    parser.add_argument("--runs", type=Path, default=RUNS, help="CSV of finished runs "
                        "(appended as they finish, skipped when present)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (processes)")
    args = parser.parse_args(argv)
    extra = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    policies = args.policies.split(",")
    days = {"all": list(planetlab_days()), "none": []}.get(args.days, args.days.split(","))
    out = {"day": one_day(args.day, policies, extra, args.runs, args.jobs)}
    print(f"one day ({args.day}):\n{out['day'].to_string(index=False)}\n")
    if days:
        out["medians"] = medians(days, policies, extra, args.runs, args.jobs)
        print(f"medians over {len(days)} days:\n{out['medians'].to_string(index=False)}\n")
    out["modes"] = per_mode(args.day, args.mode_policy, extra)
    print(f"per hosting mode:\n{out['modes'].to_string(index=False)}")
    print(f"figure: {figure(out['modes'], args.figure)}")
    return out


if __name__ == "__main__":
    main()
