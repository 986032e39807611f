"""Same seed ⇒ identical tables; another seed differs; streams are isolated (docs/model.md §8)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import simpy

from fleet_sim.model.demand import DemandWorkload, Spiky
from fleet_sim.model.distributions import Exponential
from fleet_sim.model.fleet import Fleet
from fleet_sim.model.host import Host
from fleet_sim.model.jobs import JobWorkload, PoissonJobs
from fleet_sim.results.recorder import ChangePointRecorder
from fleet_sim.rng import Streams


def run(seed: int, extra_workload: bool = False) -> dict[str, pd.DataFrame]:
    env = simpy.Environment()
    rec = ChangePointRecorder()
    streams = Streams(seed)
    fleet = Fleet(env)
    for h in range(3):
        host = fleet.add(Host(env, f"h{h}", cores=4, recorder=rec))
        for w in range(2):
            name = f"h{h}.web{w}"
            wl = JobWorkload(host, name)
            wl.add_feed(PoissonJobs(2.0, Exponential(0.5), 1.0, streams.get(f"{name}.arrivals"),
                                    streams.get(f"{name}.sizes")))
        spiky = DemandWorkload(host, f"h{h}.batch", Spiky(0.5, 1 / 60, Exponential(20.0), 3.0,
                                                          streams.get(f"h{h}.batch.spikes")))
        spiky.start()
        if extra_workload:
            extra = JobWorkload(host, f"h{h}.extra")
            extra.add_feed(PoissonJobs(1.0, Exponential(0.1), 1.0, streams.get(f"h{h}.x.a"),
                                       streams.get(f"h{h}.x.s")))
    env.run(until=600)
    fleet.finalize(600)
    return {name: pd.DataFrame({c: list(v) for c, v in cols.items()})
            for name, cols in rec.data.items()}


def test_same_seed_gives_identical_tables():
    a, b = run(1), run(1)
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert len(a["jobs"]) > 1000


def test_another_seed_differs():
    a, b = run(1), run(2)
    assert not a["jobs"].equals(b["jobs"])


def test_adding_a_workload_keeps_other_draws():
    # common random numbers: the spiky demand and web arrivals do not move
    a, b = run(4), run(4, extra_workload=True)
    wa, wb = a["workloads"], b["workloads"]
    def demand_steps(frame, name):
        d = frame[frame.workload == name][["t", "demand_cores"]].drop_duplicates("t", keep="last")
        d = d[d.demand_cores.diff() != 0]  # change points of demand alone
        return d.reset_index(drop=True)

    for name in ("h0.batch", "h2.batch"):
        pd.testing.assert_frame_equal(demand_steps(wa, name), demand_steps(wb, name))
    arr_a = np.sort(a["jobs"].query("workload == 'h1.web0'")["arrival"].to_numpy())
    arr_b = np.sort(b["jobs"].query("workload == 'h1.web0'")["arrival"].to_numpy())
    n = min(len(arr_a), len(arr_b))
    np.testing.assert_array_equal(arr_a[: n - 5], arr_b[: n - 5])


def _overloaded(seed: int) -> tuple[dict[str, pd.DataFrame], int]:
    """One 2-core host whose forty job workloads ask for 3 cores: queues grow and every
    arrival and completion re-rates every workload's jobs (one pool each)."""
    env = simpy.Environment()
    rec = ChangePointRecorder()
    streams = Streams(seed)
    host = Host(env, "h0", cores=2, recorder=rec)
    for w in range(40):
        wl = JobWorkload(host, f"web{w}")
        wl.add_feed(PoissonJobs(0.15, Exponential(0.5), 1.0, streams.get(f"web{w}.arrivals"),
                                streams.get(f"web{w}.sizes")))
    env.run(until=300)
    host.finalize(300)
    tables = {name: pd.DataFrame({c: list(v) for c, v in cols.items()})
              for name, cols in rec.data.items()}
    return tables, len(host.cpu._heap)


def test_dropping_superseded_completions_from_the_heap_changes_no_result(monkeypatch):
    import fleet_sim.model.scheduler as scheduler

    monkeypatch.setattr(scheduler, "COMPACT_MIN", 10**12)  # never
    kept, heap_kept = _overloaded(5)
    monkeypatch.setattr(scheduler, "COMPACT_MIN", 0)  # whenever half the heap is stale
    compacted, heap_compacted = _overloaded(5)
    assert kept.keys() == compacted.keys()
    for name in kept:
        pd.testing.assert_frame_equal(kept[name], compacted[name])
    assert len(kept["jobs"]) > 500
    live = 2 * 40  # at most a completion per pool and an arrival per feed
    assert heap_compacted <= 2 * live < heap_kept  # stale entries piled up without it
