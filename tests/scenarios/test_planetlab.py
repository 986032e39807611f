"""The ten bundled PlanetLab days: the arrays are the CloudSim files, value for value.

The expected figures were computed when the days were packed, straight from the
source files (Cloudslab/cloudsim, modules/cloudsim-examples/src/main/resources/
workload/planetlab/<day>/, one integer % per line, 288 lines per file): the file
count, the sum of all values, the SHA-256 of the uint8 array (VMs sorted by file
name, C order) and of the sorted names joined by newlines (first 16 hex digits).
The mean and standard deviation of 2011-03-03 are those Beloglazov & Buyya (2012)
report for that day (12.31 %, 17.09 %).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from fleet_sim.errors import TraceError
from fleet_sim.scenarios.traces import (
    PLANETLAB_SAMPLES,
    bundled_planetlab,
    pack_planetlab,
    planetlab_day,
    planetlab_days,
    read_planetlab,
)

# day: (VMs, sum of all percents, sha256 of the array, sha256 of the names)
SOURCE = {
    "20110303": (1052, 3730979, "7f8ebcb58319b9bc", "2e2cd7fb44f94da8"),
    "20110306": (898, 2958567, "8337fbb3c4ad592c", "37918b90c3fb862e"),
    "20110309": (1061, 3270541, "7de6e146993fb63b", "b89634e996a72bcd"),
    "20110322": (1516, 4044554, "f226e6264be66730", "65790456a79094f1"),
    "20110325": (1078, 3278904, "a14d13ab8b701418", "f12021ec134b08b0"),
    "20110403": (1463, 5222074, "493935fcac8f38a5", "8925f528f0b35a5e"),
    "20110409": (1358, 4348839, "b5b1a2b62d55d0e6", "10b8879125e44ab2"),
    "20110411": (1233, 4104606, "619cbc71e26ffbca", "2b1318736ea45bf3"),
    "20110412": (1054, 3501784, "d6d155d71793bc07", "5fdab8b7b5b1870a"),
    "20110420": (1033, 3103287, "69fe94dd05d97687", "259bf40b7a75cabd"),
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def test_all_ten_days_are_bundled():
    assert planetlab_days() == tuple(sorted(SOURCE))


@pytest.mark.parametrize("day", sorted(SOURCE))
def test_each_day_is_the_source_array(day):
    vms, total, array_sha, names_sha = SOURCE[day]
    d = planetlab_day(day)
    assert d.day == day
    assert d.cpu_percent.shape == (vms, PLANETLAB_SAMPLES) == (len(d.vms), 288)
    assert d.cpu_percent.dtype == np.uint8
    assert int(d.cpu_percent.sum(dtype=np.int64)) == total
    assert _sha(np.ascontiguousarray(d.cpu_percent).tobytes()) == array_sha
    assert _sha("\n".join(d.vms).encode()) == names_sha
    assert list(d.vms) == sorted(d.vms)


def test_20110303_matches_the_workload_table_of_beloglazov_buyya_2012():
    u = planetlab_day("20110303").cpu_percent
    assert round(float(u.mean()), 2) == 12.31
    assert round(float(u.std()), 2) == 17.09


def test_the_single_file_traces_are_rows_of_their_day():
    day = planetlab_day("20110303")
    for path in bundled_planetlab():
        row = day.vms.index(path.name)
        np.testing.assert_array_equal(day.utilization()[row], read_planetlab(path))


def test_a_day_is_read_only_and_loaded_once():
    d = planetlab_day("20110306")
    assert planetlab_day("20110306") is d
    with pytest.raises(ValueError, match="read-only"):
        d.cpu_percent[0, 0] = 1


def test_unknown_day_lists_the_bundled_ones():
    with pytest.raises(TraceError,
                       match=r"no bundled PlanetLab day '20110304' \(allowed: 20110303, "):
        planetlab_day("20110304")


def test_pack_then_load_round_trips_names_with_spaces(tmp_path):
    folder = tmp_path / "20990101"
    folder.mkdir()
    (folder / "b_node slice").write_text("".join(f"{k % 101}\n" for k in range(288)))
    (folder / "a_node").write_text("7\n" * 288)
    out = pack_planetlab(folder, tmp_path)
    with np.load(out, allow_pickle=False) as z:
        assert list(z["vm"]) == ["a_node", "b_node slice"]
        np.testing.assert_array_equal(z["cpu_percent"][0], np.full(288, 7))
        np.testing.assert_array_equal(z["cpu_percent"][1], np.arange(288) % 101)


@pytest.mark.parametrize(("name", "lines", "match"), [
    ("2099-01-01", 288, "folder name is not a day"),
    ("20990101", 287, "287 lines \\(allowed: 288"),
])
def test_pack_rejects_what_is_not_a_day(tmp_path, name, lines, match):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "vm").write_text("1\n" * lines)
    with pytest.raises(TraceError, match=match):
        pack_planetlab(folder, tmp_path)
