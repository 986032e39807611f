"""Replay hangs a workload under its host only while it has jobs, and the job of a
one-job workload straight under the host: the same finish times as a replay that
keeps every workload attached all along."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import simpy

from fleet_sim.model.host import Host
from fleet_sim.model.jobs import JobWorkload, TraceJobs
from fleet_sim.replay import replay


def always_attached(jobs: pd.DataFrame, cores: float) -> dict[int, float]:
    env = simpy.Environment()
    hosts, workloads = [], []
    for host_name, on_host in jobs.groupby("host"):
        host = Host(env, str(host_name), cores=cores)
        hosts.append(host)
        for wl_name, rows in on_host.groupby("workload"):
            wl = JobWorkload(host, str(wl_name))
            wl.add_feed(TraceJobs(rows["time"].tolist(), rows["core_seconds"].tolist(),
                                  rows["max_cores"].tolist(), rows["job_id"].tolist()))
            workloads.append(wl)
    for host in hosts:
        host.finalize(math.inf)
    return {j.job_id: j.finish for wl in workloads for j in wl.finished}


def test_idle_workloads_off_the_tree_change_no_finish_time():
    rng = np.random.default_rng(7)
    n = 400
    jobs = pd.DataFrame({
        "job_id": np.arange(n),
        "time": np.sort(rng.uniform(0, 200, n)),
        "host": rng.choice(["h0", "h1"], n),
        # 40 shared workloads and about 200 of one job each
        "workload": np.where(rng.random(n) < 0.5, rng.choice([f"w{k}" for k in range(40)], n),
                             np.char.add("lone", np.arange(n).astype(str))),
        "core_seconds": rng.exponential(20, n),
        "max_cores": rng.choice([0.5, 1.0, 4.0], n),
    })
    out = replay(jobs, cores=4)
    reference = always_attached(jobs, 4)
    assert len(out) == n
    for job_id, finish in zip(out["job_id"], out["finish"], strict=True):
        assert math.isclose(finish, reference[job_id], rel_tol=1e-9, abs_tol=1e-9)


def test_names_that_need_quotes_survive_the_csv(tmp_path):
    from fleet_sim.replay import write_csv

    path = tmp_path / "o.csv"
    frame = pd.DataFrame({"job_id": [0, 1], "workload": ['a,"b"', "c"], "finish": [0.1, 2.0]})
    write_csv(frame, path)
    assert pd.read_csv(path).equals(frame)
    assert path.read_text().startswith("job_id,workload,finish\n")


def test_the_fast_reader_gives_the_trace_reader_s_frame(tmp_path):
    from fleet_sim.replay import _read
    from fleet_sim.scenarios.traces import read_job_trace

    good = tmp_path / "good.csv"
    good.write_text("workload,time,host,core_seconds,max_cores\n"
                    'a,2.5,h1,8,4\n"b,c",0,h2,1e1,0.5\n\na,1,h1,0,1\n')
    padded = tmp_path / "padded.csv"  # the trace reader strips blanks around cells
    padded.write_text("time,host,workload,core_seconds,max_cores\n0, h1 ,a,1, 1\n")
    for path in (good, padded):  # _read's columns: in file order, the job_id is the row
        by_id = read_job_trace(path).sort_values("job_id", ignore_index=True)
        fast = pa.table(_read(path)).to_pandas()
        fast["host"] = fast["host"].astype(by_id["host"].dtype)  # read dictionary-encoded
        assert fast.equals(by_id.drop(columns="job_id"))
