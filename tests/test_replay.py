"""Job-trace replay: function and command line."""

from __future__ import annotations

import subprocess
import sys

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
