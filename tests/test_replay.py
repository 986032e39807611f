"""Job-trace replay: function and command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fleet_sim.errors import TraceError
from fleet_sim.replay import replay

TRACE = """time,host,workload,core_seconds,max_cores
0,h1,a,8,4
0,h1,a,1,1
0,h1,a,1,1
0.5,h2,b,2,1
0,h2,c,1,1
"""


@pytest.fixture
def trace(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text(TRACE)
    return path


def test_replay_hand_case(trace):
    out = replay(trace, cores=4)
    assert list(out.columns) == ["job_id", "workload", "arrival", "start", "finish"]
    assert out["job_id"].tolist() == [0, 1, 2, 3, 4]
    # h1: a hand case; h2: b and c share equally but neither wants > 1 core
    assert out["finish"].tolist() == [2.5, 1.0, 1.0, 2.5, 1.0]
    assert out["start"].tolist() == out["arrival"].tolist()


def test_workloads_on_a_host_share_equally(tmp_path):
    # 2 cores: workload a has two 2-core jobs, b one 2-core job -> b gets 1 core
    path = tmp_path / "t.csv"
    path.write_text("time,host,workload,core_seconds,max_cores\n"
                    "0,h,a,2,2\n0,h,a,2,2\n0,h,b,2,2\n")
    out = replay(path, cores=2)
    # a's jobs run at 0.5 each, b at 1: b done at 2; then a's at 1 each: done at 3
    assert out["finish"].tolist() == [3.0, 3.0, 2.0]


def test_cli_writes_csv(trace, tmp_path):
    dst = tmp_path / "finished.csv"
    proc = subprocess.run([sys.executable, "-m", "fleet_sim.replay", str(trace), "--cores", "4",
                           "--out", str(dst)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(dst)
    assert got["finish"].tolist() == [2.5, 1.0, 1.0, 2.5, 1.0]


def test_cli_bad_trace_names_file_row_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,host,workload,core_seconds,max_cores\n0,h,a,1,0\n")
    proc = subprocess.run([sys.executable, "-m", "fleet_sim.replay", str(bad), "--cores", "4",
                           "--out", str(tmp_path / "o.csv")], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2
    assert "bad.csv" in proc.stderr and "max_cores" in proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.raises(TraceError):
        replay(bad, cores=4)


def _trace_frame(rng: np.random.Generator, n: int, workload) -> pd.DataFrame:
    """``n`` jobs on three hosts (times on a 0.1 s grid, so some arrive together);
    ``workload(host, job_id)`` names each job's workload."""
    host = rng.choice(["h0", "h1", "h2"], n)
    return pd.DataFrame({
        "time": np.sort(rng.uniform(0, 100, n)).round(1), "host": host,
        "workload": [workload(h, i) for i, h in enumerate(host)],
        "core_seconds": rng.exponential(10, n), "max_cores": rng.choice([0.5, 1.0, 3.0], n),
    })


@pytest.mark.parametrize("seed", [1, 2])
def test_jobs_each_their_own_workload_finish_as_when_grouped_per_host(tmp_path, seed):
    # a host's workloads share it equally and a workload's jobs share by max-min:
    # one workload per job and one workload of all the host's jobs are the same water-fill
    own, grouped = tmp_path / "own.csv", tmp_path / "grouped.csv"
    _trace_frame(np.random.default_rng(seed), 400, lambda h, i: f"job{i}").to_csv(
        own, index=False)
    _trace_frame(np.random.default_rng(seed), 400, lambda h, i: f"all-{h}").to_csv(
        grouped, index=False)
    a, b = replay(own, cores=4), replay(grouped, cores=4)
    assert a["job_id"].tolist() == b["job_id"].tolist() == list(range(400))
    assert a["arrival"].tolist() == b["arrival"].tolist()
    np.testing.assert_allclose(a["finish"], b["finish"], rtol=1e-9, atol=1e-9)
    assert (a["finish"] > a["arrival"]).all()


def test_a_frame_s_own_job_ids_are_kept(tmp_path):
    frame = pd.DataFrame({"job_id": [10, 3, 7], "time": [0.0, 0.0, 1.0],
                          "host": ["h", "h", "g"], "workload": ["a", "a", "b"],
                          "core_seconds": [2.0, 1.0, 1.0], "max_cores": [1.0, 1.0, 1.0]})
    out = replay(frame, cores=1)
    # h: jobs 10 and 3 share one core (0.5 each): 3 is done at 2, then 10 alone at 3
    assert out["job_id"].tolist() == [3, 7, 10]
    assert out["finish"].tolist() == [2.0, 2.0, 3.0]


def test_the_command_line_replays_without_pandas(trace, tmp_path):
    code = ("import sys; from fleet_sim.replay import main; "
            f"main([{str(trace)!r}, '--cores', '4', '--out', {str(tmp_path / 'o.csv')!r}]); "
            "print('pandas' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.split()[-1] == "False"  # importing pandas costs ~40 MiB
    assert pd.read_csv(tmp_path / "o.csv")["finish"].tolist() == [2.5, 1.0, 1.0, 2.5, 1.0]


def test_feeds_order_a_host_s_jobs_busy_workloads_first_then_the_lone_ones_by_time():
    from fleet_sim.replay import _feeds

    # rows in trace order: workload codes (a=1 … e=5) and arrival times (s)
    workload = np.array([2, 1, 3, 1, 4, 2, 5, 1])
    time = np.array([5.0, 3.0, 1.0, 1.0, 1.0, 2.0, 0.5, 1.0])
    order, starts, lone = _feeds(workload, time)
    # a: rows 3 and 7 at t=1 (trace order), then 1; b: 5, 0; lone c, d, e by time and
    # at t=1 by name: e (0.5), c, d
    assert order.tolist() == [3, 7, 1, 5, 0, 6, 2, 4]
    assert starts.tolist() == [0, 3, 5]
    assert lone.tolist() == [False, False, True]


def test_hosts_are_numbered_as_python_sorts_their_names():
    import pyarrow as pa
    import pyarrow.compute as pc

    from fleet_sim.replay import _hosts

    hosts = pc.dictionary_encode(pa.chunked_array([["b", "a"], ["B", "é", "a"]]))
    names, codes = _hosts(hosts)
    assert names == sorted(["b", "a", "B", "é"]) == ["B", "a", "b", "é"]
    assert codes.tolist() == [2, 1, 0, 3, 1]
