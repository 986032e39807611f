"""Backends change where runs execute, never what they produce; a killed sweep resumes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fleet_sim.errors import FleetSimError
from fleet_sim.results import store
from fleet_sim.scenarios import runner
from fleet_sim.scenarios.backends import DaskCluster, ProcessPool, Serial, make_backend

TINY = Path(__file__).parent / "tiny.toml"
PARAMS = {"hosting.mode": ["baremetal", "container"]}
SHORT = {"run.duration_s": 120, "hosting.baremetal.install_s": 10}
TABLES = ("hosts", "workloads", "jobs", "events", "summary", "workload_summary")


def _square(x: int) -> int:
    return x * x


def _sweep(out: Path, backend) -> dict[str, pd.DataFrame]:
    res = runner.sweep(TINY, PARAMS, 2, set=SHORT, out=out, backend=backend, progress=False)
    assert res.info["ran"] == 4 and not res.info["failed"]
    return {name: res.table(name).drop(columns="run_id").sort_values(
        ["hosting.mode", "replication"], kind="stable", ignore_index=True) for name in TABLES}


@pytest.fixture(scope="module")
def serial_tables(tmp_path_factory):
    return _sweep(tmp_path_factory.mktemp("serial"), Serial())


def _assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


def test_process_pool_gives_the_serial_tables(serial_tables, tmp_path):
    _assert_same(serial_tables, _sweep(tmp_path, ProcessPool(2)))


def _local_cluster():
    distributed = pytest.importorskip("distributed")
    # ":0": the scheduler's HTTP server takes any free port, never a fixed one
    return distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                    dashboard_address=":0")


def test_dask_cluster_gives_the_serial_tables(serial_tables, tmp_path):
    # by address, as `fleet-sim sweep --dask ADDRESS` does
    with _local_cluster() as cluster, DaskCluster(cluster.scheduler_address) as backend:
        _assert_same(serial_tables, _sweep(tmp_path, backend))


def test_dask_backend_works_while_the_default_dashboard_port_is_taken(tmp_path):
    holder = socket.socket()
    try:
        holder.bind(("", 8787))  # if this fails, something else holds 8787: just as good
        holder.listen()
    except OSError:
        pass
    try:
        with _local_cluster() as cluster, DaskCluster(cluster.scheduler_address) as backend:
            assert sorted(backend.map(_square, [1, 2, 3])) == [1, 4, 9]
    finally:
        holder.close()


def test_backends_yield_every_result():
    for backend in (Serial(), ProcessPool(2)):
        with backend:
            assert sorted(backend.map(_square, [1, 2, 3])) == [1, 4, 9]


def test_the_default_backend_is_a_pool_of_one_worker_per_core():
    assert isinstance(make_backend(workers=1), Serial)
    assert isinstance(make_backend(workers=4, tasks=1), Serial)
    pool = make_backend(workers=3)
    assert isinstance(pool, ProcessPool) and pool.workers == 3
    if (os.cpu_count() or 1) > 1:
        assert make_backend().workers == os.cpu_count()


def _finished(out: Path) -> set[str]:
    return store.finished_run_ids(out)


def test_a_sweep_killed_with_sigkill_resumes_and_loses_nothing(tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "fleet_sim.cli", "sweep", str(TINY), "--quiet",
           "--param", "hosting.mode=vm,container", "--replications", "3",
           "--set", "run.duration_s=1200", "--workers", "1", "--out", str(out)]
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
        try:  # kill it as soon as its first run is stored (bounded wait, no timing guess)
            deadline = time.monotonic() + 120
            while not _finished(out) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    done_before = _finished(out)
    assert done_before, log.read_text()
    for run_id in done_before:  # what finished is whole
        assert store.read_manifest(out / run_id)["status"] == "ok"
        assert (out / run_id / "jobs.parquet").is_file()

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    ran, skipped = map(int, re.search(r"ran (\d+), skipped (\d+)", again.stdout).groups())
    assert (ran, skipped) == (6 - len(done_before), len(done_before))
    assert len(_finished(out)) == 6
    assert not [p for p in out.iterdir() if p.name.startswith(store.TMP_PREFIX)]
    assert len(store.load(out).summary) == 6


def test_a_sweep_started_beside_a_checkout_named_fleet_sim_uses_the_installed_package(tmp_path):
    # the folder holding a clone called fleet_sim: its results/ folder would shadow
    # fleet_sim.results if workers put the current folder on sys.path
    (tmp_path / "fleet_sim" / "results").mkdir(parents=True)
    (tmp_path / "fleet_sim" / "fleet_sim").mkdir()
    script = Path(sys.executable).parent / "fleet-sim"  # as a user runs it
    out = subprocess.run([str(script), "sweep", str(TINY), "--param", "hosting.mode=vm,container",
                          "--set", "run.duration_s=60", "--workers", "2", "-q", "--out", "out"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ran 2, skipped 0 already stored, 0 failed" in out.stdout


def test_a_worker_that_dies_gives_one_message_naming_the_run():
    with ProcessPool(2) as backend, pytest.raises(FleetSimError, match="a worker process died "
                                                  "while running"):
        list(backend.map(os._exit, [3]))
