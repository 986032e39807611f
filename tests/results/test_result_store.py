"""The results store: atomic run folders, manifests, load with run and swept columns."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest

from fleet_sim.errors import FleetSimError
from fleet_sim.results import store

SUMMARY_COLUMNS = pd.DataFrame({"t": [0.0, 1.0], "kind": ["boot", "stop"],
                                "entity": ["a", "a"], "detail": ["", ""]})


def _manifest(run_id: str, status: str = store.OK, **extra) -> dict:
    return {"run_id": run_id, "status": status, "seed": 7, "replication": 1,
            "params": {"hosting.mode": "vm"}, "tables": {"events": 2}} | extra


def test_write_then_load_adds_run_and_param_columns(tmp_path):
    store.write_run(tmp_path, "abc", {"events": SUMMARY_COLUMNS}, _manifest("abc"))
    res = store.load(tmp_path)
    events = res.events
    assert list(events.columns[:4]) == ["run_id", "seed", "replication", "hosting.mode"]
    assert events["hosting.mode"].tolist() == ["vm", "vm"]
    pd.testing.assert_frame_equal(events.iloc[:, 4:], SUMMARY_COLUMNS)
    assert res.manifests[0]["path"] == str(tmp_path / "abc")


def test_a_temporary_folder_is_never_taken_for_a_run(tmp_path):
    half = tmp_path / f"{store.TMP_PREFIX}abc-{socket.gethostname()}-1-00000000"
    half.mkdir()
    (half / store.MANIFEST).write_text(json.dumps(_manifest("abc")))
    assert store.finished_run_ids(tmp_path) == set()
    with pytest.raises(FleetSimError, match="no runs found"):
        store.load(tmp_path)


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = socket.gethostname()
    stale = tmp_path / f"{store.TMP_PREFIX}abc-{host}-{dead}-00000000"
    live = tmp_path / f"{store.TMP_PREFIX}def-{host}-{os.getpid()}-00000000"
    stale.mkdir()
    live.mkdir()
    assert store.remove_stale_temporaries(tmp_path) == 1
    assert not stale.exists() and live.exists()


def test_a_failed_run_is_replaced_and_a_finished_one_kept(tmp_path):
    store.write_run(tmp_path, "abc", {}, _manifest("abc", store.FAILED))
    assert store.finished_run_ids(tmp_path) == set()
    store.write_run(tmp_path, "abc", {"events": SUMMARY_COLUMNS}, _manifest("abc"))
    assert store.finished_run_ids(tmp_path) == {"abc"}
    store.write_run(tmp_path, "abc", {}, _manifest("abc", wall_time_s=99))
    assert "wall_time_s" not in store.read_manifest(tmp_path / "abc")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(store.TMP_PREFIX)]


def test_failed_runs_have_no_tables_but_are_listed_with_their_error(tmp_path):
    exc = {"type": "CapacityError", "message": "fleet too small"}
    store.write_run(tmp_path, "bad", {}, _manifest("bad", store.FAILED, exception=exc))
    store.write_run(tmp_path, "ok", {"events": SUMMARY_COLUMNS}, _manifest("ok"))
    res = store.load(tmp_path)
    runs = res.runs.set_index("run_id")
    assert runs.loc["bad", "error"] == "CapacityError: fleet too small"
    assert set(res.events["run_id"]) == {"ok"}


def test_a_table_no_run_has_is_empty_with_its_columns(tmp_path):
    store.write_run(tmp_path, "abc", {"events": SUMMARY_COLUMNS}, _manifest("abc"))
    jobs = store.load(tmp_path).jobs
    assert jobs.empty and "response_time_s" in jobs.columns and "run_id" in jobs.columns


def test_load_a_single_run_folder_or_some_runs(tmp_path):
    for run_id in ("a", "b"):
        store.write_run(tmp_path, run_id, {"events": SUMMARY_COLUMNS}, _manifest(run_id))
    assert len(store.load(tmp_path / "a")) == 1
    assert len(store.load(tmp_path, run_ids=["b"])) == 1


def test_load_of_a_missing_folder_says_so(tmp_path):
    with pytest.raises(FleetSimError, match="no such results folder"):
        store.load(tmp_path / "nope")


def _config(mode: str, batch: int, seed: int) -> dict:
    return {"run": {"seed": seed, "duration_s": 60}, "hosting": {"mode": mode},
            "apps": [{"name": "web", "replicas": 2}, {"name": "batch", "replicas": batch}],
            "fleet": {"hosts": [{"type": "std", "count": 4}]}}


def test_runs_are_told_apart_by_every_config_key_that_differs_never_by_seed(tmp_path):
    # a single run (no swept params) next to a sweep over hosting.mode, and a baseline
    runs = [("a", {}, _config("baremetal", 1, 1)),
            ("b", {"hosting.mode": "vm"}, _config("vm", 1, 1)),
            ("c", {"hosting.mode": "vm"}, _config("vm", 1, 99)),  # a replication
            ("d", {}, _config("baremetal", 0, 1))]
    for run_id, params, config in runs:
        store.write_run(tmp_path, run_id, {"events": SUMMARY_COLUMNS},
                        _manifest(run_id, params=params, config=config))
    res = store.load(tmp_path)
    assert res.params == ["hosting.mode", "apps.batch.replicas"]
    events = res.events.drop_duplicates("run_id").set_index("run_id")
    assert events["hosting.mode"].to_dict() == {"a": "baremetal", "b": "vm", "c": "vm",
                                                "d": "baremetal"}
    assert events["apps.batch.replicas"].to_dict() == {"a": 1, "b": 1, "c": 1, "d": 0}
    assert res.runs["hosting.mode"].notna().all()


def test_a_swept_key_by_index_adds_no_twin_by_name(tmp_path):
    for run_id, n in (("a", 1), ("b", 3)):
        config = _config("vm", n, 1)
        store.write_run(tmp_path, run_id, {"events": SUMMARY_COLUMNS},
                        _manifest(run_id, params={"apps[1].replicas": n}, config=config))
    assert store.load(tmp_path).params == ["apps[1].replicas"]


def test_a_slice_of_a_table_reads_text_as_categoricals_and_a_column_an_older_file_lacks_as_nan(
        tmp_path):
    import numpy as np
    import pandas as pd

    from fleet_sim.results.store import read_parquet

    file = tmp_path / "jobs.parquet"
    pd.DataFrame({"workload": ["a", "b", "a"], "arrival": [0.0, 1.0, 2.0]}).to_parquet(file)
    got = read_parquet(file, ["workload", "outcome", "arrival"])
    assert list(got.columns) == ["workload", "outcome", "arrival"]
    assert isinstance(got["workload"].dtype, pd.CategoricalDtype)
    assert list(got["workload"]) == ["a", "b", "a"] and np.isnan(got["outcome"]).all()


def test_a_slice_reads_only_the_rows_and_columns_asked_for(tmp_path):
    import pandas as pd

    from fleet_sim.results import store

    frame = pd.DataFrame({"workload": ["a", "b", "a"], "arrival": [0.0, 1.0, 2.0]})
    res = store.in_memory({"run_id": "r1", "seed": 1, "status": store.OK}, {"jobs": frame})
    got = res.table("jobs", ["arrival"], where={"workload": ["a"]})
    assert list(got["arrival"]) == [0.0, 2.0] and list(got["run_id"]) == ["r1", "r1"]
    assert res.table("jobs", ["arrival"], runs=["elsewhere"]).empty
    with pytest.raises(KeyError, match="no column"):
        res.table("jobs", ["arrival"], where={"colour": ["red"]})


@pytest.mark.parametrize("stored", [True, False])
def test_chunks_are_the_slice_a_row_group_at_a_time_in_stored_order(tmp_path, stored):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 50
    frame = pd.DataFrame({"t": np.arange(n, dtype=float),
                          "workload": ["a", "b", "c", "a", "b"] * 10, "host": ["h"] * n,
                          "instance": ["i"] * n,
                          "allocated_cores": np.arange(n) / 2})
    file = tmp_path / "workloads.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), file, row_group_size=7)
    manifest = {"run_id": "r1", "seed": 1, "status": store.OK}
    res = store.in_memory(manifest, {"workloads": file if stored else frame})
    columns, where = ["t", "workload", "allocated_cores"], {"workload": ["a", "c"]}
    parts = list(res.chunks("workloads", columns, "r1", where))
    if stored:
        # a row group at a time; the last (row 49, "b") holds no wanted row
        assert len(parts) == 7 and max(len(p) for p in parts) <= 7
    got = pd.concat(parts, ignore_index=True)
    want = res.table("workloads", columns, where=where)[columns].reset_index(drop=True)
    assert got["t"].tolist() == want["t"].tolist() == [t for t in range(n) if t % 5 in (0, 2, 3)]
    assert got["workload"].astype(str).tolist() == want["workload"].astype(str).tolist()
    assert got["allocated_cores"].tolist() == want["allocated_cores"].tolist()
    with pytest.raises(KeyError, match="no column"):
        res.chunks("workloads", ["colour"], "r1")
    with pytest.raises(KeyError, match="no successful run"):
        res.chunks("workloads", columns, "elsewhere")
