"""Exact quantiles over chunks equal numpy's and the time-weighted percentile, however chunked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fleet_sim.numerics import quantiles as qmod
from fleet_sim.numerics import timeweighted

QS = [0.0, 0.01, 0.5, 0.9, 0.99, 1.0]


def _chunked(arrays, size):
    def gen():
        n = len(arrays[0])
        for i in range(0, n, size):
            yield tuple(a[i:i + size] for a in arrays)
    return gen


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=300),
       st.integers(1, 3), st.integers(1, 50))
def test_quantiles_equal_numpy_per_group(values, groups, size):
    x = np.array(values)
    g = np.arange(x.size) % groups
    got = qmod.quantiles(_chunked((g, x), size), QS)
    for k in np.unique(g):
        assert got[int(k)] == pytest.approx([float(np.quantile(x[g == k], q)) for q in QS],
                                            rel=1e-12, abs=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.floats(0.01, 100)), min_size=1,
                max_size=200), st.integers(1, 40))
# a tie: half the time at each value, the total summed in another order (the median is 0)
@example([(0, 5.440085849741164), (1, 5.440085849741164)] * 2, 1)
def test_weighted_quantiles_equal_the_time_weighted_percentile(pieces, size):
    v = np.array([p[0] / 7 for p in pieces])  # ties are common, as in utilization
    dur = np.array([p[1] for p in pieces])
    t = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
    end = float(np.sum(dur))
    got = qmod.weighted_quantiles(_chunked((np.zeros(v.size, dtype=np.int64), v, dur), size),
                                  QS)[0]
    assert got == [float(timeweighted.percentile(t, v, q, end)) for q in QS]


def test_a_constant_group_and_no_data():
    assert qmod.quantiles(_chunked((np.zeros(4, dtype=np.int64), np.full(4, 2.5)), 3),
                          [0.5]) == {0: [2.5]}
    assert qmod.quantiles(_chunked((np.zeros(0, dtype=np.int64), np.zeros(0)), 3), [0.5]) == {}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1e-6, 1e6, allow_nan=False), min_size=1, max_size=300),
       st.integers(1, 50))
def test_positive_heavy_tailed_data_uses_log_buckets_and_stays_exact(values, size):
    x = np.array(values)
    got = qmod.quantiles(_chunked((np.zeros(x.size, dtype=np.int64), x), size), QS)[0]
    assert got == pytest.approx([float(np.quantile(x, q)) for q in QS], rel=1e-12, abs=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=200), st.integers(1, 3),
       st.integers(1, 30), st.integers(1, 5))
def test_quantiles_stay_exact_when_buckets_hold_many_values(values, groups, size, bins):
    # few buckets: ranks k and k + 1 share one or sit in two, with ties
    x = np.array(values, dtype=float)
    g = np.arange(x.size) % groups
    old, qmod.BINS = qmod.BINS, bins
    try:
        got = qmod.quantiles(_chunked((g, x), size), QS)
    finally:
        qmod.BINS = old
    for k in np.unique(g):
        assert got[int(k)] == pytest.approx([float(np.quantile(x[g == k], q)) for q in QS],
                                            rel=1e-12, abs=0)
