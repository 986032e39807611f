"""Speed of the consolidation study: one PlanetLab day (800 hosts, 1,052 VMs, 24 h).

Runs ``experiments/consolidation.toml`` with a policy through the scenario path and
prints wall and CPU seconds (build + start, run, tables), the moves and the mean wall
time of one policy round (the decisions alone, on the state at the end of the run).

    python benchmarks/consolidation.py [--policy thr-mmt] [--day 20110303] [--set KEY=VALUE …]

``--policy`` takes a comma list or ``all`` (NPA, DVFS and the 20 pairs): each runs in a
process of its own, one after the other, and a table of wall seconds closes the output.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fleet_sim.scenarios.build import build
from fleet_sim.scenarios.config import CONSOLIDATION_POLICIES, load_config

SCENARIO = Path(__file__).resolve().parents[1] / "experiments" / "consolidation.toml"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="thr-mmt")
    ap.add_argument("--day", default="20110303")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    policies = CONSOLIDATION_POLICIES if args.policy == "all" else args.policy.split(",")
    if len(policies) > 1:
        _each(policies, ["--day", args.day, *(f"--set={item}" for item in args.set)])
        return
    over: dict[str, object] = {"consolidation.policy": args.policy, "traces.day": args.day}
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            over[key] = json.loads(value)
        except json.JSONDecodeError:
            over[key] = value
    config = load_config(SCENARIO, over)
    wall, cpu = time.perf_counter(), time.process_time()
    sim = build(config)
    sim.start()
    t_start = time.perf_counter() - wall
    sim.run()
    t_run = time.perf_counter() - wall - t_start
    sim.finalize()
    summary = sim.tables()["summary"].iloc[0]
    total, cpu = time.perf_counter() - wall, time.process_time() - cpu
    fleet = sim.dynamic
    assert fleet is not None
    rounds = ""
    if fleet.decide is not None:
        state, k = fleet.state(), 5
        t0 = time.perf_counter()
        for _ in range(k):
            fleet.decide(state)
        rounds = f", one round {(time.perf_counter() - t0) / k * 1000:.0f} ms"
    print(f"{args.policy} {args.day}: {len(fleet.hosts)} hosts, {len(fleet.names)} VMs, "
          f"{config.run.duration_s / 3600:g} h: wall {total:.1f} s (start {t_start:.1f}, "
          f"run {t_run:.1f}, tables {total - t_start - t_run:.1f}), CPU {cpu:.1f} s; "
          f"{summary['migrations']:.0f} migrations{rounds}")


def _each(policies: Sequence[str], rest: list[str]) -> None:
    """Run each policy (with the options ``rest``) in a process of its own and print a
    table of their wall times."""
    rows = []
    for policy in policies:
        line = subprocess.run([sys.executable, __file__, "--policy", policy, *rest],
                              check=True, capture_output=True, text=True).stdout.strip()
        print(line, flush=True)
        wall = float(re.search(r"wall ([0-9.]+) s", line).group(1))
        moves = int(re.search(r"(\d+) migrations", line).group(1))
        rows.append((policy, moves, wall))
    print("\n| policy | migrations | wall |\n|---|---:|---:|")
    for policy, moves, wall in sorted(rows, key=lambda r: r[2]):
        print(f"| {policy} | {moves:,} | {wall:.1f} s |")


if __name__ == "__main__":
    main()
