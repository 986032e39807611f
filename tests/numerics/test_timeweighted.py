"""Exact time-weighted statistics over change points, and confidence intervals across runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fleet_sim.numerics.timeweighted import (
    HeldValues,
    KeyedBins,
    StreamedBins,
    bin_means,
    duration_above,
    integral,
    mean,
    mean_ci,
    percentile,
    weighted_percentile,
)

PROPS = settings(max_examples=100, deadline=None)

# 5 for 1 s, 1 for 2 s, 2 for 1 s over [0, 4]
T, V, END = [0.0, 1.0, 3.0], [5.0, 1.0, 2.0], 4.0


# ---------------------------------------------------------------- hand cases


def test_integral_and_mean_of_two_steps():
    assert integral([0, 10], [1, 3], t_end=20) == 40
    assert mean([0, 10], [1, 3], t_end=20) == 2


def test_t_start_trims_the_warm_up():
    assert integral([0, 10], [1, 3], t_end=20, t_start=5) == 35
    assert mean([0, 10], [1, 3], t_end=20, t_start=5) == pytest.approx(35 / 15)
    assert mean([0, 10], [1, 3], t_end=20, t_start=15) == 3


def test_change_points_after_t_end_are_ignored():
    assert mean([0, 10], [1, 3], t_end=5) == 1


def test_last_value_at_a_repeated_time_wins():
    t, v = [0, 5, 5, 10], [1, 9, 2, 4]
    assert mean(t, v, t_end=10) == 1.5
    assert percentile(t, v, 1, t_end=10) == 2  # 9 and 4 are held for zero time


def test_percentiles_are_exact_time_weighted_quantiles():
    assert percentile(T, V, 0, END) == 1
    assert percentile(T, V, 0.5, END) == 1  # value <= 1 for exactly half the time
    assert percentile(T, V, 0.51, END) == 2
    assert percentile(T, V, 0.75, END) == 2
    assert percentile(T, V, 0.76, END) == 5
    assert percentile(T, V, 1, END) == 5


def test_percentile_accepts_many_quantiles_at_once():
    got = percentile(T, V, [0.0, 0.6, 0.99], END)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, [1, 2, 5])


def test_duration_above_counts_strictly_greater_values():
    assert duration_above(T, V, 1.5, END) == 2
    assert duration_above(T, V, 2, END) == 1
    assert duration_above(T, V, 2, END, t_start=2) == 0


def test_numpy_inputs_are_accepted():
    assert mean(np.array(T), np.array(V), END) == pytest.approx(9 / 4)


def test_zero_length_window_has_zero_integral_but_no_mean():
    assert integral([0, 1], [1, 2], t_end=1, t_start=1) == 0
    with pytest.raises(ValueError, match="zero length"):
        mean([0, 1], [1, 2], t_end=1, t_start=1)
    with pytest.raises(ValueError, match="zero length"):
        percentile([0, 1], [1, 2], 0.5, t_end=1, t_start=1)


@pytest.mark.parametrize(
    ("t", "v", "t_end", "t_start", "match"),
    [
        ([], [], 1, None, "empty"),
        ([0, 1], [1], 2, None, "equal length"),
        ([0, 2, 1], [1, 1, 1], 3, None, r"non-decreasing, but t\[2\]=1.0 < t\[1\]=2.0"),
        ([0, math.inf], [1, 1], 3, None, "finite times"),
        ([0, 1], [1, math.nan], 3, None, "nan"),
        ([0, 1], [1, 1], 3, -1, "before the first change point"),
        ([0, 1], [1, 1], 2, 3, "t_end=2.0 must be >= t_start=3.0"),
        ([0, 1], [1, 1], math.inf, None, "finite"),
    ],
)
def test_bad_series_are_rejected(t, v, t_end, t_start, match):
    with pytest.raises(ValueError, match=match):
        integral(t, v, t_end, t_start)


@pytest.mark.parametrize("q", [-0.1, 1.1, math.nan, [0.5, 2]])
def test_quantile_outside_0_1_is_rejected(q):
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\]"):
        percentile(T, V, q, END)


# ---------------------------------------------------------------- confidence intervals


@pytest.mark.parametrize(("n", "t"), [(2, 12.706), (3, 4.303), (11, 2.228), (31, 2.042)])
def test_mean_ci_uses_the_tabulated_student_t_quantile(n, t):
    samples = [0.0, 1.0] * (n // 2) + [0.5] * (n % 2)
    _, h = mean_ci(samples)
    sd = float(np.std(samples, ddof=1))
    assert h == pytest.approx(t * sd / math.sqrt(n), rel=2e-4)


def test_mean_ci_at_90_percent_is_narrower():
    assert mean_ci([1.0, 2.0, 4.0], 0.90)[1] < mean_ci([1.0, 2.0, 4.0])[1]


def test_mean_ci_of_three_runs():
    m, h = mean_ci([1.0, 2.0, 3.0])
    assert m == 2
    assert h == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-4)


def test_mean_ci_of_constant_samples_has_zero_width():
    assert mean_ci([0.1] * 7) == (0.1, 0.0)


def test_mean_ci_of_one_sample_has_unknown_width():
    m, h = mean_ci([4.2])
    assert m == 4.2
    assert math.isnan(h)


@pytest.mark.parametrize(
    ("samples", "confidence", "match"),
    [
        ([], 0.95, "non-empty"),
        ([1, math.nan], 0.95, "finite"),
        ([1, 2], 1.0, r"confidence must be in \(0, 1\)"),
    ],
)
def test_mean_ci_rejects_bad_input(samples, confidence, match):
    with pytest.raises(ValueError, match=match):
        mean_ci(samples, confidence)


# ---------------------------------------------------------------- properties

times = st.one_of(st.integers(0, 20).map(float), st.floats(0, 1000))
values = st.one_of(st.integers(-3, 3).map(float), st.floats(-1e3, 1e3))


@st.composite
def series(draw):
    """(t, v, t_end, t_start): the argument order of the functions; window length > 0."""
    n = draw(st.integers(1, 12))
    t = sorted(draw(st.lists(times, min_size=n, max_size=n)))
    v = draw(st.lists(values, min_size=n, max_size=n))
    t_start = draw(st.one_of(st.none(), st.floats(t[0], t[-1] + 10)))
    lo = t[0] if t_start is None else t_start
    t_end = lo + draw(st.floats(1e-3, 1000))
    return t, v, t_end, t_start


def held(t, v, t_end, t_start):
    """Reference: (duration, value) of each piece held for positive time in the window."""
    lo = t[0] if t_start is None else t_start
    out = []
    for i, x in enumerate(v):
        a = min(max(t[i], lo), t_end)
        b = min(max(t[i + 1] if i + 1 < len(t) else t_end, lo), t_end)
        if b > a:
            out.append((b - a, x))
    return out


def scale_of(t, v, t_end, t_start):
    lo = t[0] if t_start is None else t_start
    return max(1.0, max(abs(x) for x in v) * (t_end - lo))


@PROPS
@given(series())
def test_integral_matches_reference_sum(s):
    ref = math.fsum(d * x for d, x in held(*s))
    assert integral(*s) == pytest.approx(ref, rel=1e-9, abs=1e-9 * scale_of(*s))


@PROPS
@given(series(), st.floats(0, 1))
def test_integral_is_additive_over_a_split_point(s, frac):
    t, v, t_end, t_start = s
    lo = t[0] if t_start is None else t_start
    mid = lo + frac * (t_end - lo)
    whole = integral(t, v, t_end, t_start)
    parts = integral(t, v, mid, t_start) + integral(t, v, t_end, mid)
    assert parts == pytest.approx(whole, rel=1e-9, abs=1e-9 * scale_of(*s))


@PROPS
@given(series())
def test_mean_lies_between_min_and_max_held(s):
    xs = [x for _, x in held(*s)]
    assert min(xs) <= mean(*s) <= max(xs)


@PROPS
@given(series(), values)
def test_mean_of_a_constant_is_the_constant(s, c):
    t, v, t_end, t_start = s
    assert mean(t, [c] * len(v), t_end, t_start) == c


@PROPS
@given(series())
def test_percentile_0_and_1_are_min_and_max_held(s):
    xs = [x for _, x in held(*s)]
    t, v, t_end, t_start = s
    assert percentile(t, v, 0, t_end, t_start) == min(xs)
    assert percentile(t, v, 1, t_end, t_start) == max(xs)


@PROPS
@given(series(), st.floats(0, 1))
def test_percentile_is_the_smallest_value_covering_q_of_the_time(s, q):
    t, v, t_end, t_start = s
    pieces = held(*s)
    total = math.fsum(d for d, _ in pieces)
    x = percentile(t, v, q, t_end, t_start)

    def frac_at_most(y):
        return math.fsum(d for d, z in pieces if z <= y) / total

    tol = 1e-9
    assert x in [z for _, z in pieces]
    assert frac_at_most(x) >= q - tol
    below = [z for _, z in pieces if z < x]
    if below:
        assert frac_at_most(max(below)) < q + tol


@PROPS
@given(series(), st.lists(st.floats(0, 1), min_size=2, max_size=5).map(sorted))
def test_percentile_is_monotone_in_q(s, qs):
    t, v, t_end, t_start = s
    got = percentile(t, v, qs, t_end, t_start)
    assert list(got) == sorted(got)


@PROPS
@given(series(), values)
def test_time_above_and_at_most_a_threshold_add_up_to_the_window(s, thr):
    t, v, t_end, t_start = s
    lo = t[0] if t_start is None else t_start
    above = duration_above(t, v, thr, t_end, t_start)
    at_most = math.fsum(d for d, x in held(*s) if x <= thr)
    assert above + at_most == pytest.approx(t_end - lo, rel=1e-9, abs=1e-9)


samples = st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40)


@PROPS
@given(samples)
def test_mean_ci_is_centred_within_the_samples_with_nonnegative_width(xs):
    m, h = mean_ci(xs)
    assert min(xs) <= m <= max(xs)
    assert h >= 0


@PROPS
@given(samples, st.floats(-1e3, 1e3))
def test_mean_ci_width_is_shift_invariant(xs, c):
    assume(max(xs) > min(xs))
    (m0, h0), (m1, h1) = mean_ci(xs), mean_ci([x + c for x in xs])
    span = max(abs(x) for x in xs) + abs(c)
    assert m1 == pytest.approx(m0 + c, abs=1e-9 * span)
    assert h1 == pytest.approx(h0, rel=1e-6, abs=1e-6 * span)


@PROPS
@given(st.floats(-1e6, 1e6), st.integers(2, 50))
def test_mean_ci_of_constant_samples_is_exact(c, n):
    assert mean_ci([c] * n) == (c, 0.0)


def test_bin_means_hand_case():
    # 0 on [0, 1), 4 on [1, 3), 1 from 3 on; bins [0, 2], [2, 4]; a tie at 3 (last wins)
    t, v = [0.0, 1.0, 3.0, 3.0], [0.0, 4.0, 9.0, 1.0]
    assert bin_means(t, v, [0.0, 2.0, 4.0]).tolist() == [2.0, 2.5]
    # a bin before the first change point is NaN; one it starts in is averaged from it
    out = bin_means([5.0, 6.0], [1.0, 3.0], [0.0, 4.0, 8.0])
    assert math.isnan(out[0]) and out[1] == pytest.approx(7.0 / 3.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.floats(0, 5)), min_size=1, max_size=25),
       st.lists(st.integers(0, 48), min_size=2, max_size=8, unique=True))
def test_bin_means_are_each_bins_time_weighted_mean(points, cuts):
    points.sort(key=lambda p: p[0])
    t = np.array([p[0] / 4 for p in points])
    v = np.array([p[1] for p in points])
    edges = np.array(sorted(c / 4 for c in cuts))
    got = bin_means(t, v, edges)
    for k in range(edges.size - 1):
        b0, b1 = float(edges[k]), float(edges[k + 1])
        if t[0] >= b1:
            assert math.isnan(got[k])
            continue
        start = max(b0, float(t[0]))
        inside = t < b1
        assert got[k] == pytest.approx(mean(t[inside], v[inside], b1, start) if
                                       start < b1 else math.nan, rel=1e-12, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 80), st.floats(0, 5)), min_size=1, max_size=60),
       st.integers(2, 30), st.integers(1, 20))
def test_bin_means_of_a_long_series_a_few_bins_at_a_time_are_the_same(points, bins, block):
    import fleet_sim.numerics.timeweighted as tw

    points.sort(key=lambda p: p[0])
    t = np.array([p[0] / 8 for p in points])
    v = np.array([p[1] for p in points])
    edges = np.linspace(0.0, 11.0, bins + 1)
    whole = bin_means(t, v, edges)
    old, tw.BIN_BLOCK_POINTS = tw.BIN_BLOCK_POINTS, block
    try:
        blocks = bin_means(t, v, edges)
    finally:
        tw.BIN_BLOCK_POINTS = old
    np.testing.assert_allclose(blocks, whole, rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 80), st.floats(0, 5)), min_size=1, max_size=60),
       st.integers(1, 20), st.integers(0, 100), st.integers(0, 100))
def test_integral_of_a_long_series_a_block_at_a_time_is_the_same(points, block, a, b):
    import fleet_sim.numerics.timeweighted as tw

    points.sort(key=lambda p: p[0])
    t = np.array([p[0] / 8 for p in points])
    v = np.array([p[1] for p in points])
    start = float(t[0]) + min(a, b) / 10
    end = max(float(t[-1]), start) + max(a, b) / 10
    whole = integral(t, v, end, start)
    old, tw.BIN_BLOCK_POINTS = tw.BIN_BLOCK_POINTS, block
    try:
        blocks = integral(t, v, end, start)
    finally:
        tw.BIN_BLOCK_POINTS = old
    assert blocks == pytest.approx(whole, rel=1e-12, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 80), st.floats(0, 5), st.floats(0, 3)), min_size=1,
                max_size=60),
       st.integers(2, 30), st.lists(st.integers(0, 60), max_size=6), st.integers(0, 40))
def test_bins_streamed_block_by_block_are_the_bin_means_of_the_whole(points, bins, splits,
                                                                       start):
    points.sort(key=lambda p: p[0])
    t = np.array([p[0] / 8 for p in points])
    v = np.array([[p[1], p[2]] for p in points])
    edges = np.linspace(start / 8, 11.0, bins + 1)
    streamed = StreamedBins(edges, columns=2)
    cuts = sorted({min(s, t.size) for s in splits})
    for a, b in zip([0, *cuts], [*cuts, t.size], strict=True):
        streamed.add(t[a:b], v[a:b])  # empty blocks too
    means, integrals = streamed.finish()
    for j in range(2):
        np.testing.assert_allclose(means[:, j], bin_means(t, v[:, j], edges), rtol=1e-12,
                                   atol=1e-12)
        if t[0] <= edges[0]:  # the window is covered from its start: the whole integral
            assert integrals[j] == pytest.approx(integral(t, v[:, j], edges[-1], edges[0]),
                                                 rel=1e-12, abs=1e-12)
        else:
            assert integrals[j] == pytest.approx(integral(t, v[:, j], edges[-1]),
                                                 rel=1e-12, abs=1e-12)


def test_streamed_bins_hand_case_and_order():
    # 0 on [0, 1), 4 on [1, 3), 1 from 3 on (a tie at 3: last wins), in three blocks
    streamed = StreamedBins([0.0, 2.0, 4.0])
    streamed.add([0.0, 1.0], [0.0, 4.0])
    streamed.add([3.0], [9.0])
    streamed.add([3.0], [1.0])
    means, integrals = streamed.finish()
    assert means[:, 0].tolist() == [2.0, 2.5] and integrals.tolist() == [9.0]
    late = StreamedBins([0.0, 1.0])
    late.add([0.5], [1.0])
    with pytest.raises(ValueError, match="time order"):
        late.add([0.25], [1.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60), st.integers(0, 4)),
                min_size=1, max_size=50),
       st.lists(st.integers(0, 50), max_size=5), st.integers(0, 30), st.integers(0, 30))
def test_held_values_are_each_keys_pieces_summed_by_value(rows, splits, a, b):
    rows.sort(key=lambda r: r[1])  # time order; each key's rows in order
    keys = np.array([r[0] for r in rows])
    t = np.array([r[1] / 4 for r in rows])
    v = np.array([r[2] / 2 for r in rows])
    start, end = min(a, b) / 2, max(a, b) / 2 + 1
    held = HeldValues(4, start, end)
    cuts = sorted({min(x, t.size) for x in splits})
    for lo, hi in zip([0, *cuts], [*cuts, t.size], strict=True):
        held.add(keys[lo:hi], t[lo:hi], v[lo:hi])
    values, durations = held.finish()
    expected: dict[float, float] = {}
    for k in range(4):
        mine = keys == k
        if not mine.any() or max(start, t[mine][0]) >= end:
            continue
        tk, vk = t[mine], v[mine]
        bounds = np.append(tk[1:], end)
        for lo_t, hi_t, val in zip(tk, bounds, vk, strict=True):
            d = min(max(hi_t, start), end) - min(max(lo_t, start), end)
            if d > 0:
                expected[float(val)] = expected.get(float(val), 0.0) + d
    assert dict(zip(values.tolist(), durations.tolist(), strict=True)) == pytest.approx(expected)
    if expected:
        assert weighted_percentile(values, durations, 0.5) == weighted_percentile(
            list(expected), list(expected.values()), 0.5)


def test_weighted_percentile_is_percentile_of_the_pieces():
    # T, V over [0, 4]: 5 for 1 s, 1 for 2 s, 2 for 1 s
    for q in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0):
        assert weighted_percentile([5.0, 1.0, 2.0], [1.0, 2.0, 1.0], q) == percentile(T, V, q,
                                                                                       END)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60), st.floats(0, 5)),
                min_size=1, max_size=50),
       st.lists(st.integers(0, 50), max_size=5), st.integers(1, 12))
def test_keyed_bins_are_each_keys_bin_means(rows, splits, bins):
    rows.sort(key=lambda r: r[1])  # time order; each key's rows in order
    keys = np.array([r[0] for r in rows])
    t = np.array([r[1] / 4 for r in rows])
    v = np.array([r[2] for r in rows])
    edges = np.linspace(0.0, 16.0, bins + 1)
    cells = KeyedBins(4, edges)
    cuts = sorted({min(x, t.size) for x in splits})
    for lo, hi in zip([0, *cuts], [*cuts, t.size], strict=True):
        cells.add(keys[lo:hi], t[lo:hi], v[lo:hi])
    z = cells.finish()
    for k in range(4):
        mine = keys == k
        if mine.any():
            np.testing.assert_allclose(z[k], bin_means(t[mine], v[mine], edges), rtol=1e-12,
                                       atol=1e-12)
        else:
            assert np.isnan(z[k]).all()


def test_keyed_bins_of_many_16_bit_keys_do_not_overflow_their_cells():
    # 800 hosts × 120 bins: more cells than an int16 holds (the heatmap of a large fleet)
    n_keys, bins = 800, 120
    rng = np.random.default_rng(3)
    keys = np.repeat(np.arange(n_keys, dtype=np.int16), 3)
    t = np.tile([0.0, 40.0, 90.0], n_keys)
    v = rng.random(keys.size)
    order = np.argsort(t, kind="stable")
    edges = np.linspace(0.0, 120.0, bins + 1)
    cells = KeyedBins(n_keys, edges)
    cells.add(keys[order], t[order], v[order])
    z = cells.finish()
    for k in (0, 300, n_keys - 1):
        mine = keys == k
        np.testing.assert_allclose(z[k], bin_means(t[mine], v[mine], edges), rtol=1e-12)
