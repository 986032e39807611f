"""Power curves: linear idle→peak and the 11-point SPECpower table (W)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.numerics.power import LinearPower, TablePower

# HP ProLiant ML110 G4 (Xeon 3040), SPECpower_ssj2008, as in CloudSim's PowerModelSpecPower
ML110_G4_W = (86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117)
PROPS = settings(max_examples=200, deadline=None)

utils = st.floats(-0.5, 1.5)
powers = st.floats(0, 1000)


# ---------------------------------------------------------------- linear


def test_linear_is_idle_at_0_peak_at_1_and_halfway_at_half():
    p = LinearPower(idle_w=100, peak_w=250)
    assert (p.power_w(0), p.power_w(0.5), p.power_w(1)) == (100, 175, 250)


def test_linear_clamps_utilization_to_0_1():
    p = LinearPower(100, 250)
    assert (p.power_w(-0.2), p.power_w(1.7)) == (100, 250)


def test_linear_array_keeps_shape_and_clamps():
    got = LinearPower(100, 200).power_w_array(np.array([[0.0, 0.25], [1.0, 2.0]]))
    np.testing.assert_allclose(got, [[100, 125], [200, 200]])


@pytest.mark.parametrize(
    ("idle_w", "peak_w", "match"),
    [
        (-1, 100, "idle_w must be a finite power >= 0 W"),
        (100, math.inf, "peak_w must be a finite power >= 0 W"),
        (math.nan, 100, "idle_w must be a finite power >= 0 W"),
        (200, 100, "peak_w must be >= idle_w"),
    ],
)
def test_linear_rejects_bad_powers(idle_w, peak_w, match):
    with pytest.raises(ValueError, match=match):
        LinearPower(idle_w, peak_w)


def test_nan_utilization_is_rejected():
    p = LinearPower(100, 200)
    with pytest.raises(ValueError, match="util must be"):
        p.power_w(math.nan)
    with pytest.raises(ValueError, match="util must be"):
        p.power_w_array(np.array([0.5, math.nan]))


def test_models_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LinearPower(1, 2).idle_w = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        TablePower(ML110_G4_W).points_w = ()  # type: ignore[misc]


# ---------------------------------------------------------------- table


def test_table_hits_every_published_point():
    p = TablePower(ML110_G4_W)
    for k, w in enumerate(ML110_G4_W):
        assert p.power_w(k / 10) == pytest.approx(w, rel=1e-12)
    assert (p.power_w(0), p.power_w(1)) == (86, 117)
    assert (p.idle_w, p.peak_w) == (86, 117)


def test_table_interpolates_linearly_between_points():
    p = TablePower(ML110_G4_W)
    assert p.power_w(0.05) == pytest.approx((86 + 89.4) / 2)
    assert p.power_w(0.55) == pytest.approx((102 + 106) / 2)
    assert p.power_w(0.925) == pytest.approx(114 + 0.25 * (117 - 114))


def test_table_clamps_utilization_to_0_1():
    p = TablePower(ML110_G4_W)
    assert (p.power_w(-1), p.power_w(3)) == (86, 117)


def test_table_array_matches_hand_values():
    got = TablePower(ML110_G4_W).power_w_array(np.array([0.0, 0.05, 0.55, 1.0, 1.5]))
    np.testing.assert_allclose(got, [86, 87.7, 104, 117, 117])


@pytest.mark.parametrize(
    ("points", "match"),
    [
        (ML110_G4_W[:10], "points_w must hold 11 values"),
        ((*ML110_G4_W, 120), "points_w must hold 11 values"),
        ((-1, *ML110_G4_W[1:]), r"points_w\[0\] \(at 0 % load\) must be a finite power"),
        ((*ML110_G4_W[:10], math.nan), r"points_w\[10\] \(at 100 % load\)"),
    ],
)
def test_table_rejects_bad_points(points, match):
    with pytest.raises(ValueError, match=match):
        TablePower(points)


# ---------------------------------------------------------------- properties


@PROPS
@given(st.lists(powers, min_size=11, max_size=11), st.lists(utils, min_size=1, max_size=20))
def test_table_array_matches_scalar_and_stays_within_points(points, us):
    p = TablePower(points)
    got = p.power_w_array(np.array(us))
    for u, g in zip(us, got, strict=True):
        assert g == pytest.approx(p.power_w(u), rel=1e-12, abs=1e-9)
        assert min(points) - 1e-9 <= p.power_w(u) <= max(points) + 1e-9


@PROPS
@given(st.lists(powers, min_size=11, max_size=11).map(sorted), utils, utils)
def test_increasing_table_gives_power_increasing_with_load(points, u1, u2):
    p = TablePower(points)
    lo, hi = sorted((u1, u2))
    assert p.power_w(lo) <= p.power_w(hi) + 1e-9


@PROPS
@given(powers, powers, utils)
def test_linear_table_equals_linear_model(a, b, u):
    idle_w, peak_w = sorted((a, b))
    linear = LinearPower(idle_w, peak_w)
    table = TablePower([linear.power_w(k / 10) for k in range(11)])
    assert table.power_w(u) == pytest.approx(linear.power_w(u), rel=1e-9, abs=1e-9)
    assert linear.power_w_array(np.array([u]))[0] == pytest.approx(linear.power_w(u))
