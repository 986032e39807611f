"""Trace readers: PlanetLab files, fleet aggregates, job-trace CSVs, bundled data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fleet_sim.errors import TraceError
from fleet_sim.scenarios.traces import (
    JOB_TRACE_COLUMNS,
    bundled_aggregate,
    bundled_planetlab,
    read_aggregate,
    read_job_trace,
    read_planetlab,
)

HEADER = ",".join(JOB_TRACE_COLUMNS)


def write(tmp_path, text, name="trace.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- PlanetLab


def test_planetlab_percent_lines_become_fractions(tmp_path):
    path = write(tmp_path, "0\n25\n100\n", "vm")
    np.testing.assert_array_equal(read_planetlab(path), [0.0, 0.25, 1.0])


def test_planetlab_tolerates_spaces_and_trailing_blank_lines(tmp_path):
    path = write(tmp_path, " 7 \r\n12\n\n\n", "vm")
    np.testing.assert_array_equal(read_planetlab(path), [0.07, 0.12])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("5\n101\n", r"line 2: '101' is not a CPU percent \(allowed: an integer from 0 to 100\)"),
        ("5\n-1\n", "line 2: '-1' is not a CPU percent"),
        ("5\n3.5\n", "line 2: '3.5' is not a CPU percent"),
        ("5\nabc\n", "line 2: 'abc' is not a CPU percent"),
        ("5\n\n6\n", "line 2: '' is not a CPU percent"),
        ("", "file is empty"),
    ],
)
def test_planetlab_bad_lines_name_file_and_line(tmp_path, text, match):
    path = write(tmp_path, text, "vm")
    with pytest.raises(TraceError, match=match) as err:
        read_planetlab(path)
    assert str(path) in str(err.value)


def test_missing_file_is_a_trace_error(tmp_path):
    with pytest.raises(TraceError, match="nope: file not found"):
        read_planetlab(tmp_path / "nope")


def test_binary_file_is_a_trace_error(tmp_path):
    path = tmp_path / "vm"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(TraceError, match="not a UTF-8 text file"):
        read_planetlab(path)


def test_directory_is_a_trace_error(tmp_path):
    with pytest.raises(TraceError, match="cannot read file"):
        read_planetlab(tmp_path)


# ---------------------------------------------------------------- bundled data


def test_bundled_planetlab_has_20_full_days_of_valid_traces():
    paths = bundled_planetlab()
    assert len(paths) == 20
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    for p in paths:
        u = read_planetlab(p)
        assert u.shape == (288,)
        assert ((u >= 0) & (u <= 1)).all()


def test_bundled_planetlab_by_name():
    first = bundled_planetlab()[0]
    assert bundled_planetlab(first.name) == first


def test_unknown_bundled_planetlab_lists_what_exists():
    with pytest.raises(TraceError, match=r"no bundled PlanetLab trace named 'x' \(allowed: "):
        bundled_planetlab("x")


@pytest.mark.parametrize(
    ("name", "column", "lo", "hi"),
    [
        ("google2019", "avg_cpu", 0, 1),
        ("azurev2", "cpu_usage", 1e6, 1e7),
    ],
)
def test_bundled_aggregates_cover_3_days_at_300_s(name, column, lo, hi):
    t_s, values = read_aggregate(bundled_aggregate(name), column)
    assert len(t_s) == len(values) == 3 * 288
    np.testing.assert_array_equal(np.diff(t_s), 300.0)
    assert t_s[0] == 0
    assert lo <= values.min() <= values.max() <= hi


def test_unknown_bundled_aggregate_lists_names():
    with pytest.raises(TraceError, match="allowed: google2019, azurev2"):
        bundled_aggregate("aws")


# ---------------------------------------------------------------- aggregates


def test_aggregate_without_timestamp_uses_the_row_interval(tmp_path):
    path = write(tmp_path, "cpu,mem\n10,1\n20.5,2\n30,3\n")
    t_s, v = read_aggregate(path, "cpu", interval_s=60)
    np.testing.assert_array_equal(t_s, [0, 60, 120])
    np.testing.assert_array_equal(v, [10, 20.5, 30])


def test_aggregate_with_timestamp_uses_it(tmp_path):
    path = write(tmp_path, "timestamp,cpu\n0,1\n300,2\n900,3\n")
    t_s, v = read_aggregate(path, "cpu")
    np.testing.assert_array_equal(t_s, [0, 300, 900])
    np.testing.assert_array_equal(v, [1, 2, 3])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("cpu\n1\n", r"header: missing column\(s\) load \(allowed: cpu\)"),
        (
            "load\n1\nx\n",
            r"row 2 \(line 3\), column 'load': 'x' is not allowed \(allowed: a finite",
        ),
        ("load\n1\n\n\n", None),  # trailing blank lines are fine
        ("load\n1\nnan\ninf\n", r"row 2 \(line 3\), column 'load'.*; 1 more bad value"),
        ("load,x\n1,2\n3\n", r"row 2 \(line 3\): 1 fields \(allowed: 2, one per column load,x\)"),
        ("timestamp,load\n0,1\n-5,2\n", r"row 2 \(line 3\), column 'timestamp': '-5'"),
        (
            "timestamp,load\n0,1\n300,2\n300,3\n",
            r"row 3 \(line 4\), column 'timestamp'.*increasing",
        ),
        ("", "file is empty"),
    ],
)
def test_bad_aggregates_name_row_and_column(tmp_path, text, match):
    path = write(tmp_path, text)
    if match is None:
        assert read_aggregate(path, "load")[1].tolist() == [1.0]
        return
    with pytest.raises(TraceError, match=match):
        read_aggregate(path, "load")


# ---------------------------------------------------------------- job traces


def test_job_trace_is_sorted_stably_by_time_keeping_file_row_as_job_id(tmp_path):
    path = write(
        tmp_path,
        f"{HEADER}\n5,h1,web,2,1\n0,h2,batch,8,4\n5,h1,web,1.5,1\n1.5,h1,web,0,0.5\n",
    )
    jobs = read_job_trace(path)
    assert list(jobs.columns) == ["job_id", *JOB_TRACE_COLUMNS]
    assert jobs["job_id"].tolist() == [1, 3, 0, 2]
    assert jobs["time"].tolist() == [0, 1.5, 5, 5]
    assert jobs["host"].tolist() == ["h2", "h1", "h1", "h1"]
    assert jobs["core_seconds"].tolist() == [8, 0, 2, 1.5]
    assert jobs["max_cores"].tolist() == [4, 0.5, 1, 1]
    assert isinstance(jobs.index, pd.RangeIndex)
    assert jobs["job_id"].dtype == np.int64
    assert jobs["time"].dtype == np.float64


def test_job_trace_columns_in_any_order_with_spaces(tmp_path):
    path = write(tmp_path, "max_cores, core_seconds, workload, host, time\n2, 4, api , h9, 3\n")
    jobs = read_job_trace(path)
    assert jobs.iloc[0].to_dict() == {
        "job_id": 0,
        "time": 3.0,
        "host": "h9",
        "workload": "api",
        "core_seconds": 4.0,
        "max_cores": 2.0,
    }


def test_empty_job_trace_gives_an_empty_table(tmp_path):
    jobs = read_job_trace(write(tmp_path, HEADER + "\n"))
    assert len(jobs) == 0
    assert list(jobs.columns) == ["job_id", *JOB_TRACE_COLUMNS]


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (
            "1,h,w,1,0",
            r"row 1 \(line 2\), column 'max_cores': '0' is not allowed "
            r"\(allowed: a finite number > 0\)",
        ),
        (
            "1,h,w,-1,1",
            r"row 1 \(line 2\), column 'core_seconds': '-1' .*allowed: a finite number >= 0",
        ),
        ("-1,h,w,1,1", r"column 'time': '-1' .*allowed: a finite time >= 0 s"),
        ("x,h,w,1,1", r"column 'time': 'x' is not allowed"),
        ("1,h,w,inf,1", r"column 'core_seconds': 'inf'"),
        ("1,,w,1,1", r"row 1 \(line 2\), column 'host': empty \(allowed: a non-empty host name\)"),
        ("1,h, ,1,1", r"column 'workload': empty"),
        ("1,h,w,1,1\n2,h,w,1,two", r"row 2 \(line 3\), column 'max_cores': 'two'"),
        ("1,h,w,1,1\n2,h,w", r"row 2 \(line 3\): 3 fields \(allowed: 5"),
        ("1,h,w,1,1,9", r"row 1 \(line 2\): 6 fields"),
    ],
)
def test_bad_job_rows_name_file_row_and_column(tmp_path, rows, match):
    path = write(tmp_path, f"{HEADER}\n{rows}\n")
    with pytest.raises(TraceError, match=match) as err:
        read_job_trace(path)
    assert str(err.value).startswith(f"{path}: ")


def test_first_bad_row_is_reported_with_a_count_of_the_rest(tmp_path):
    path = write(tmp_path, f"{HEADER}\n1,h,w,1,1\n2,h,w,-1,0\n3,h,w,x,1\n")
    with pytest.raises(TraceError, match=r"row 2 \(line 3\), column 'core_seconds'.*; 2 more"):
        read_job_trace(path)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ("time,host,workload,core_seconds", r"missing column\(s\) max_cores \(allowed: time,host"),
        (f"{HEADER},priority", r"unknown column\(s\) priority \(allowed: time,host"),
        ("time,time,host,workload,core_seconds,max_cores", "column 'time' appears twice"),
    ],
)
def test_bad_job_headers_say_what_is_allowed(tmp_path, header, match):
    path = write(tmp_path, f"{header}\n")
    with pytest.raises(TraceError, match=match):
        read_job_trace(path)


def test_job_trace_missing_file(tmp_path):
    with pytest.raises(TraceError, match=r"jobs\.csv: file not found"):
        read_job_trace(tmp_path / "jobs.csv")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ('1,"h,w,1,1', r"line 2: malformed CSV \(unexpected end of data\)"),
        ('1,"h"x,w,1,1', r"line 2: malformed CSV"),
    ],
)
def test_bad_quoting_is_a_trace_error(tmp_path, rows, match):
    path = write(tmp_path, f"{HEADER}\n{rows}\n")
    with pytest.raises(TraceError, match=match):
        read_job_trace(path)
