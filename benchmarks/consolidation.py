"""Speed of the consolidation study: one PlanetLab day (800 hosts, 1,052 VMs, 24 h).

Runs ``experiments/consolidation.toml`` with a policy through the scenario path and
prints wall and CPU seconds (build + start, run, tables), the moves and the mean wall
time of one policy round (the decisions alone, on the state at the end of the run).

    python benchmarks/consolidation.py [--policy thr-mmt] [--day 20110303] [--set KEY=VALUE …]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fleet_sim.scenarios.build import build
from fleet_sim.scenarios.config import load_config

SCENARIO = Path(__file__).resolve().parents[1] / "experiments" / "consolidation.toml"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="thr-mmt")
    ap.add_argument("--day", default="20110303")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
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


if __name__ == "__main__":
    main()
