"""Image distribution: how long do 100 to 5,000 servers take to get a 3 GB image, per source?

The experiment is ``experiments/image_distribution.toml``: one replica of web per
host; an all-at-once rollout rebuilds its whole image, two 1,500 MB layers, so every
host pulls 3 GB at once, with the published defaults of
``fleet_sim/hosting/defaults.py`` (10 GbE NICs and registry uplink, racks of 40,
3 concurrent layer downloads, unpacking at 100 MB/s per core, 4 MB P2P pieces,
lazy start at 6.4 % of each layer). This script runs it over ``--set`` overrides:
fleet sizes × image source — the central registry, a pull-through mirror per
rack, a P2P swarm, and the swarm with lazy pulling — and reports, per point, the
p50 / p99 / max time from the start of a host's pull until its container can
start (whole image pulled and unpacked, or lazy: its start-up share arrived) and
the registry's egress. It draws p50 time to image against hosts on log axes, and
prints the wall time of each point (approximate: it depends on the machine's load).

    .venv/bin/python experiments/image_distribution/image_distribution.py \\
        [--sizes 100,300,1000,2000,5000] [--seed 1] [--figure PATH]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

import fleet_sim as fs

SCENARIO = Path(__file__).resolve().parents[1] / "image_distribution.toml"
FIGURE = Path("image_distribution.png")  #: default figure path (current directory)
HOSTS = ("fleet.hosts.host.count", "apps.web.replicas")  #: key paths of the fleet size
#: image source → its overrides of the scenario file
SOURCES: dict[str, dict[str, Any]] = {
    "central": {"rollouts.web.distribution": "central"},
    "mirrors": {"rollouts.web.distribution": "mirrors"},
    "p2p": {"rollouts.web.distribution": "p2p"},
    "p2p + lazy": {"rollouts.web.distribution": "p2p", "images.lazy": True},
}
COLUMNS = ["source", "hosts", "p50_s", "p99_s", "max_s", "registry_gb", "peak_registry_mb_s"]


def point(source: str, n_hosts: int, seed: int | None = None) -> dict[str, Any]:
    """One row: time to image of the new instances (s) and the registry's egress."""
    hosts = dict.fromkeys(HOSTS, n_hosts)
    res = fs.run(SCENARIO, seed=seed, set={**hosts, **SOURCES[source]}, progress=False)
    timeline = res.timeline.query("version == 'v2'")
    wait = timeline["transfer_end"] - timeline["transfer_start"]
    summary = res.rollout_summary.iloc[0]
    return {"source": source, "hosts": n_hosts, "p50_s": wait.quantile(0.5),
            "p99_s": wait.quantile(0.99), "max_s": wait.max(),
            "registry_gb": summary["registry_mb"] / 1000,
            "peak_registry_mb_s": summary["peak_registry_mb_s"]}


def run(sizes: Sequence[int] = (100, 300, 1000, 2000, 5000), seed: int | None = None,
        wall_s: dict[tuple[str, int], float] | None = None) -> pd.DataFrame:
    """One row per (source, hosts); same seed ⇒ same table. ``wall_s`` gets the wall
    time of each point, s."""
    rows = []
    for source in SOURCES:
        for n in sizes:
            started = time.perf_counter()
            rows.append(point(source, n, seed))
            if wall_s is not None:
                wall_s[(source, n)] = time.perf_counter() - started
    return pd.DataFrame(rows, columns=COLUMNS)


def figure(table: pd.DataFrame, path: Path) -> Path:
    """p50 time to image (p99 as a band) against hosts, log-log, one line per source."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for source, rows in table.groupby("source", sort=False):
        line, = ax.plot(rows["hosts"], rows["p50_s"], marker="o", label=source)
        ax.fill_between(rows["hosts"], rows["p50_s"], rows["p99_s"], color=line.get_color(),
                        alpha=0.15)
    ax.set(xscale="log", yscale="log", xlabel="hosts pulling at once",
           ylabel="time until the container can start, s (p50; band to p99)",
           title="A 3 GB image (2 x 1,500 MB layers) to every host, 10 GbE")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,1000,2000,5000",
                        help="fleet sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=None, help="default: the scenario file's")
    parser.add_argument("--figure", type=Path, default=FIGURE, help="where to draw the figure")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    wall_s: dict[tuple[str, int], float] = {}
    table = run([int(x) for x in args.sizes.split(",")], args.seed, wall_s)
    print(table.to_string(index=False, float_format=lambda x: f"{x:,.2f}"))
    walls = pd.Series(wall_s).unstack()  # source x hosts
    print("\nwall time per point, s (approximate)")
    print(walls.loc[list(SOURCES)].to_string(float_format=lambda x: f"{x:,.1f}"))
    print(f"\nfigure: {figure(table, args.figure)}")
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return table


if __name__ == "__main__":
    main()
