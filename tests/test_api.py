"""The Python API mirrors the CLI: fleet_sim.run, sweep, load, Results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

import fleet_sim as fs

TINY = Path(__file__).resolve().parent / "scenarios" / "tiny.toml"


def test_the_public_names_are_curated():
    assert sorted(fs.__all__) == ["Results", "__version__", "load", "run", "sweep", "validate"]
    assert fs.__version__ != ""
    assert all(hasattr(fs, name) for name in fs.__all__)


def test_import_is_light():
    heavy = "{'pandas', 'simpy', 'pydantic'}"
    code = f"import sys, fleet_sim; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_run_returns_results_with_dataframes():
    res = fs.run(TINY, seed=2, duration_s=120, set={"hosting.mode": "vm"}, progress=False)
    assert isinstance(res, fs.Results)
    assert isinstance(res.jobs, pd.DataFrame) and len(res.jobs) > 0
    assert res.config["hosting"]["mode"] == "vm" and res.config["run"]["duration_s"] == 120
    assert res.jobs.groupby("workload")["response_time_s"].quantile(0.99).notna().all()


def test_a_config_dict_works_like_a_file():
    data = {"fleet": {"hosts": [{"type": "h", "count": 1, "cores": 2}]},
            "apps": [{"name": "a", "workloads": [{"kind": "constant", "cores": 0.5}]}],
            "hosting": {"mode": "container"}, "run": {"duration_s": 60}}
    res = fs.run(data, progress=False)
    assert res.summary["allocated_core_s"].item() > 0


def test_sweep_and_load_give_the_same_tables(tmp_path):
    sw = fs.sweep(TINY, params={"hosting.mode": ["vm", "container"]}, replications=2,
                  duration_s=120, out=tmp_path, workers=1, progress=False)
    assert sw.out_dir == tmp_path and sw.info["ran"] == 4
    runs = fs.load(tmp_path)
    pd.testing.assert_frame_equal(sw.summary, runs.summary)
    stats = runs.summarize()
    assert set(stats["hosting.mode"]) == {"vm", "container"}
    assert set(stats.columns) == {"hosting.mode", "metric", "n", "mean", "ci95"}
