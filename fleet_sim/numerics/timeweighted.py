"""Exact statistics of piecewise-constant series stored as change points.

Pure math. A series is given by change times ``t`` (s, non-decreasing) and values
``v``: ``v[i]`` holds from ``t[i]`` until ``t[i + 1]``, the last value until
``t_end``. When several change points share one time, the last one wins (the
others hold for zero time). Statistics are taken over the window
``[t_start, t_end]``; ``t_start`` defaults to ``t[0]`` and trims a warm-up.
Results are exact integrals over the pieces, never samples: an integral is in
value-units × s, a mean or percentile in value-units, a duration in s.

:func:`mean_ci` summarises one figure across independent replications with a
Student-t confidence interval (quantiles from ``scipy.stats.t``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def _pieces(
    t: ArrayLike, v: ArrayLike, t_end: float, t_start: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Durations (s) and values of the pieces inside the window, zero-length ones dropped."""
    ts = np.asarray(t, dtype=float)
    vs = np.asarray(v, dtype=float)
    if ts.ndim != 1 or vs.ndim != 1 or ts.shape != vs.shape:
        raise ValueError(
            f"t and v must be 1-D and of equal length, got shapes {ts.shape} and {vs.shape}"
        )
    if ts.size == 0:
        raise ValueError("the series is empty: need at least one change point")
    if not np.isfinite(ts).all():
        raise ValueError("t must hold finite times (s)")
    if np.isnan(vs).any():
        raise ValueError("v must not contain nan")
    if ts.size > 1 and (np.diff(ts) < 0).any():
        k = int(np.argmax(np.diff(ts) < 0)) + 1
        now, before = float(ts[k]), float(ts[k - 1])
        raise ValueError(f"t must be non-decreasing, but t[{k}]={now!r} < t[{k - 1}]={before!r}")
    start = float(ts[0]) if t_start is None else float(t_start)
    end = float(t_end)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"t_start and t_end must be finite, got {start!r} and {end!r}")
    if start < ts[0]:
        raise ValueError(
            f"t_start={start!r} is before the first change point t[0]={float(ts[0])!r}"
        )
    if end < start:
        raise ValueError(f"t_end={end!r} must be >= t_start={start!r}")
    ends = np.append(ts[1:], end)
    dur = np.clip(ends, start, end) - np.clip(ts, start, end)
    keep = dur > 0
    return dur[keep], vs[keep]


def integral(t: ArrayLike, v: ArrayLike, t_end: float, t_start: float | None = None) -> float:
    """Integral of the series over ``[t_start, t_end]`` (value-units × s)."""
    ts = np.asarray(t, dtype=float)
    if ts.ndim == 1 and ts.size > BIN_BLOCK_POINTS:  # a long series: a block at a time
        vs = np.asarray(v, dtype=float)
        if vs.shape != ts.shape:
            raise ValueError(f"t and v must be 1-D and of equal length, got shapes "
                             f"{ts.shape} and {vs.shape}")
        start = float(ts[0]) if t_start is None else float(t_start)
        if not float(t_end) >= start:
            raise ValueError(f"t_end={t_end!r} must be >= t_start={start!r}")
        total, n = 0.0, ts.size
        for a in range(0, n, BIN_BLOCK_POINTS):
            b = min(a + BIN_BLOCK_POINTS, n)
            if b < n and ts[b] < ts[b - 1]:
                raise ValueError(f"t must be non-decreasing, but t[{b}]={float(ts[b])!r} "
                                 f"< t[{b - 1}]={float(ts[b - 1])!r}")
            lo = max(start, float(ts[a])) if a else start
            hi = min(float(ts[b]) if b < n else float(t_end), float(t_end))
            if hi > lo or (not a and b == n):
                total += integral(ts[a:b], vs[a:b], max(hi, lo), lo)
        return total
    dur, vals = _pieces(t, v, t_end, t_start)
    return float(np.sum(dur * vals))


def mean(t: ArrayLike, v: ArrayLike, t_end: float, t_start: float | None = None) -> float:
    """Time-weighted mean over ``[t_start, t_end]``; ValueError if the window is empty."""
    dur, vals = _pieces(t, v, t_end, t_start)
    if dur.size == 0:
        raise ValueError("the window [t_start, t_end] has zero length: the mean is undefined")
    m = float(np.sum(dur * vals) / np.sum(dur))
    # the exact mean lies within the values' range; clip away rounding
    return min(max(m, float(vals.min())), float(vals.max()))


#: relative rounding under which a share of the time counts as reaching a quantile level
TIE_TOLERANCE = 1e-12


def percentile(
    t: ArrayLike,
    v: ArrayLike,
    q: float | ArrayLike,
    t_end: float,
    t_start: float | None = None,
) -> float | np.ndarray:
    """Time-weighted quantile(s) of the series over ``[t_start, t_end]``.

    For each ``q`` in [0, 1]: the smallest value ``x`` held for a positive time
    such that the fraction of the window with value <= ``x`` is >= ``q``. So
    ``q=0`` gives the minimum and ``q=1`` the maximum of the values held in the
    window. A fraction within :data:`TIE_TOLERANCE` (relative) of ``q`` counts as
    reaching it, so that a tie (e.g. half the time at each of two values, q = 0.5)
    gives the lower value however the durations were summed. Returns a float for a
    scalar ``q``, else an array of ``q``'s shape.
    """
    qs = np.asarray(q, dtype=float)
    if np.isnan(qs).any() or (qs < 0).any() or (qs > 1).any():
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    dur, vals = _pieces(t, v, t_end, t_start)
    if dur.size == 0:
        raise ValueError("the window [t_start, t_end] has zero length: percentiles are undefined")
    return weighted_percentile(vals, dur, qs)


def weighted_percentile(values: ArrayLike, weights: ArrayLike,
                        q: float | ArrayLike) -> float | np.ndarray:
    """The quantile(s) ``q`` of ``values`` each held for ``weights`` (> 0, e.g. s), as
    :func:`percentile` defines them."""
    qs = np.asarray(q, dtype=float)
    vals = np.asarray(values, dtype=float)
    order = np.argsort(vals, kind="stable")
    sorted_vals = vals[order]
    cum = np.cumsum(np.asarray(weights, dtype=float)[order])
    idx = np.searchsorted(cum, qs * cum[-1] * (1.0 - TIE_TOLERANCE), side="left")
    idx = np.where(qs >= 1, sorted_vals.size - 1, np.minimum(idx, sorted_vals.size - 1))
    out = sorted_vals[idx]
    return float(out) if out.ndim == 0 else out


class _KeyedPieces(ABC):
    """The pieces of ``keys`` series of change points that arrive in time-ordered
    chunks (rows of each key in time order): each series from its first change point
    on, its last value holding until ``t_end``, cut to ``[t_start, t_end]``, handed to
    ``_fold`` a chunk at a time, holding only each key's last point."""

    def __init__(self, keys: int, t_start: float, t_end: float):
        if not t_end >= t_start:
            raise ValueError(f"t_end={t_end!r} must be >= t_start={t_start!r}")
        self.t_start, self.t_end = float(t_start), float(t_end)
        self._t = np.full(keys, np.nan)  # each key's last change point, held back
        self._v = np.zeros(keys)

    def add(self, key: ArrayLike, t: ArrayLike, v: ArrayLike) -> None:
        """The next rows: each one's key (0 … keys − 1; as 16-bit integers they are
        grouped by a radix sort), time (s) and value."""
        ks, ts, vs = (np.asarray(a) for a in (key, t, v))
        if not ts.size:
            return
        order = np.argsort(ks, kind="stable")
        ks, ts, vs = ks[order], np.asarray(ts[order], float), np.asarray(vs[order], float)
        same = ks[1:] == ks[:-1]  # row i is followed by a row of its key
        first = np.flatnonzero(np.r_[True, ~same])
        last = np.flatnonzero(np.r_[~same, True])
        carried = first[~np.isnan(self._t[ks[first]])]  # a key's piece from its held point
        lo = np.r_[ts[:-1][same], self._t[ks[carried]]]
        hi = np.r_[ts[1:][same], ts[carried]]
        held = np.r_[vs[:-1][same], self._v[ks[carried]]]
        of = np.r_[ks[:-1][same], ks[carried]]
        self._t[ks[last]], self._v[ks[last]] = ts[last], vs[last]
        self._cut(lo, hi, held, of)

    def _close(self) -> None:
        """Hold each key's last value until ``t_end``."""
        has = np.flatnonzero(~np.isnan(self._t))
        self._cut(self._t[has], np.full(has.size, self.t_end), self._v[has], has)
        self._t[has] = np.nan

    def _cut(self, lo: np.ndarray, hi: np.ndarray, vals: np.ndarray, keys: np.ndarray) -> None:
        lo, hi = np.clip(lo, self.t_start, self.t_end), np.clip(hi, self.t_start, self.t_end)
        keep = hi > lo
        if keep.any():
            self._fold(lo[keep], hi[keep], vals[keep], keys[keep])

    @abstractmethod
    def _fold(self, lo: np.ndarray, hi: np.ndarray, vals: np.ndarray,
              keys: np.ndarray) -> None:
        """Add pieces ``[lo, hi)`` (s, within the window) holding ``vals``, of ``keys``."""


class HeldValues(_KeyedPieces):
    """How long each value was held, summed over the ``keys`` series of a table of
    change points that arrives in time-ordered chunks (rows of each key in time order),
    each series from its first change point and within ``[t_start, t_end]``: the
    time-weighted distribution of all key-seconds together, holding only each key's
    last point and one duration per distinct value."""

    def __init__(self, keys: int, t_start: float, t_end: float):
        super().__init__(keys, t_start, t_end)
        self.values = np.zeros(0)
        self.durations = np.zeros(0)

    def _fold(self, lo: np.ndarray, hi: np.ndarray, vals: np.ndarray,
              keys: np.ndarray) -> None:
        dur = hi - lo
        # few distinct values, many pieces: look each piece's value up, sort only new ones
        at = np.searchsorted(self.values, vals)
        known = at < self.values.size
        known[known] = self.values[at[known]] == vals[known]
        if not known.all():
            values = np.union1d(self.values, vals[~known])
            self.durations = np.bincount(np.searchsorted(values, self.values), self.durations,
                                         values.size)
            self.values = values
            at = np.searchsorted(values, vals)
        self.durations = self.durations + np.bincount(at, dur, self.values.size)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Hold each key's last value until ``t_end``: the distinct values (sorted) and
        the time each was held (s, > 0)."""
        self._close()
        keep = self.durations > 0
        return self.values[keep], self.durations[keep]


class KeyedBins(_KeyedPieces):
    """The time-weighted mean of each of ``keys`` series over each bin ``[edges[k],
    edges[k + 1]]`` (increasing, s), from a table of change points that arrives in
    time-ordered chunks (rows of each key in time order): for every key what
    :func:`bin_means` gives of its whole series, holding keys × bins numbers."""

    def __init__(self, keys: int, edges: ArrayLike):
        self.edges = np.asarray(edges, dtype=float)
        if self.edges.ndim != 1 or self.edges.size < 2 or (np.diff(self.edges) <= 0).any():
            raise ValueError("edges must be increasing, at least two")
        super().__init__(keys, float(self.edges[0]), float(self.edges[-1]))
        cells = keys * (self.edges.size - 1)
        self.weight, self.total = np.zeros(cells), np.zeros(cells)
        self.low, self.high = np.full(cells, np.inf), np.full(cells, -np.inf)

    def _fold(self, lo: np.ndarray, hi: np.ndarray, vals: np.ndarray,
              keys: np.ndarray) -> None:
        e = self.edges
        first = np.searchsorted(e, lo, side="right") - 1  # the bin each piece starts in
        over = np.flatnonzero(hi > e[first + 1])  # pieces that end in a later bin
        if over.size:  # one part per bin they cover
            spans = np.searchsorted(e, hi[over], side="left") - first[over]
            at = np.repeat(over, spans)
            step = np.arange(at.size) - np.repeat(np.cumsum(spans) - spans, spans)
            b = first[at] + step
            one = np.ones(lo.size, dtype=bool)
            one[over] = False
            lo = np.r_[lo[one], np.maximum(lo[at], e[b])]
            hi = np.r_[hi[one], np.minimum(hi[at], e[b + 1])]
            vals, keys, first = np.r_[vals[one], vals[at]], np.r_[keys[one], keys[at]], np.r_[
                first[one], b]
        cell = keys.astype(np.int64) * (e.size - 1) + first  # 16-bit keys would overflow
        dur = hi - lo
        n = self.weight.size
        self.weight += np.bincount(cell, dur, n)
        self.total += np.bincount(cell, dur * vals, n)
        order = np.argsort(cell.astype(np.int16 if n < 2 ** 15 else np.int64), kind="stable")
        cell, vals = cell[order], vals[order]
        starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        held = cell[starts]
        self.low[held] = np.minimum(self.low[held], np.minimum.reduceat(vals, starts))
        self.high[held] = np.maximum(self.high[held], np.maximum.reduceat(vals, starts))

    def finish(self) -> np.ndarray:
        """Hold each key's last value until the last edge: the means, keys × bins (NaN
        for a bin before the key's first change point)."""
        self._close()
        out = np.full(self.weight.size, np.nan)
        has = self.weight > 0
        # the exact mean lies within the values held in its bin; clip away rounding
        out[has] = np.clip(self.total[has] / self.weight[has], self.low[has], self.high[has])
        return out.reshape(-1, self.edges.size - 1)


def bin_means(t: ArrayLike, v: ArrayLike, edges: ArrayLike) -> np.ndarray:
    """Time-weighted mean of the series over each bin ``[edges[k], edges[k + 1]]``
    (``edges`` increasing; the last value holds until the last edge), in one pass:
    the pieces are cut at the edges and summed per bin. A bin that ends at or before
    ``t[0]`` is NaN; one that starts before it is averaged from ``t[0]`` on."""
    ts = np.asarray(t, dtype=float)
    vs = np.asarray(v, dtype=float)
    e = np.asarray(edges, dtype=float)
    if ts.size > BIN_BLOCK_POINTS and e.size > 2:  # a long series: a few bins at a time,
        out = []                                   # so that what it holds stays small
        step = max(1, (e.size - 1) * BIN_BLOCK_POINTS // ts.size)
        for a in range(0, e.size - 1, step):
            block = e[a:a + step + 1]
            i0 = max(int(np.searchsorted(ts, block[0], side="right")) - 1, 0)
            i1 = int(np.searchsorted(ts, block[-1], side="left"))
            out.append(_bin_means(ts[i0:max(i1, i0 + 1)], vs[i0:max(i1, i0 + 1)], block))
        return np.concatenate(out)
    return _bin_means(ts, vs, e)


#: points of a series binned at once by :func:`bin_means`
BIN_BLOCK_POINTS = 1_000_000


def _bin_means(ts: np.ndarray, vs: np.ndarray, e: np.ndarray) -> np.ndarray:
    out = np.full(e.size - 1, np.nan)
    if ts.size == 0 or e.size < 2 or not ts[0] < e[-1]:
        return out
    k, dur, at = _bin_pieces(ts, e, float(e[-1]))
    if not dur.size:
        return out
    vals = vs[at]
    weight = np.bincount(k, dur, e.size - 1)
    total = np.bincount(k, dur * vals, e.size - 1)
    has = weight > 0
    out[has] = total[has] / weight[has]
    # the exact mean lies within the values held in its bin; clip away rounding
    first = np.flatnonzero(np.append(True, k[1:] != k[:-1]))
    bins = k[first]
    out[bins] = np.clip(out[bins], np.minimum.reduceat(vals, first),
                        np.maximum.reduceat(vals, first))
    return out


def _bin_pieces(ts: np.ndarray, e: np.ndarray,
                stop: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of a series (its last value holding until ``stop`` <= ``e[-1]``) cut at
    the edges ``e`` and clipped to ``[e[0], stop]``: each one's bin, duration (s) and the
    index of the change point whose value it holds; zero-length pieces dropped."""
    n = int(np.searchsorted(ts, stop, side="left"))  # change points before the stop
    cuts = e[(e > ts[0]) & (e < stop)]
    pos = np.searchsorted(ts[:n], cuts, side="right")
    starts = np.insert(ts[:n], pos, cuts)  # both sorted: a merge, not a sort
    # the change point holding at each start: itself (a tied earlier one holds for
    # zero time and is dropped below), or for a cut the last one before it
    at = np.insert(np.arange(n), pos, pos - 1)
    lo = np.maximum(starts, e[0])
    hi = np.minimum(np.append(starts[1:], stop), stop)
    dur = hi - lo
    keep = dur > 0
    lo, dur, at = lo[keep], dur[keep], at[keep]
    return np.searchsorted(e, lo, side="right") - 1, dur, at


class StreamedBins:
    """Time-weighted means over the bins ``edges`` (increasing, s) of series of
    ``columns`` values that arrive as time-ordered blocks of change points, holding
    only the bins (and the last point): the same means as :func:`bin_means` of the
    whole series, without ever holding it. The last value holds until the last edge."""

    def __init__(self, edges: ArrayLike, columns: int = 1):
        self.edges = np.asarray(edges, dtype=float)
        if self.edges.ndim != 1 or self.edges.size < 2 or (np.diff(self.edges) <= 0).any():
            raise ValueError("edges must be increasing, at least two")
        bins = self.edges.size - 1
        self.weight = np.zeros(bins)
        self.total = np.zeros((bins, columns))
        self.low = np.full((bins, columns), np.inf)
        self.high = np.full((bins, columns), -np.inf)
        self._last: tuple[float, np.ndarray] | None = None  # held back: it lasts until the next

    def add(self, t: ArrayLike, v: ArrayLike) -> None:
        """The next change points: times ``t`` (s, non-decreasing, none before the last
        block's) and values ``v`` (one row per time, one column per series)."""
        ts = np.asarray(t, dtype=float)
        if not ts.size:
            return
        vs = np.asarray(v, dtype=float).reshape(ts.size, -1)
        if self._last is not None:
            if ts[0] < self._last[0]:
                raise ValueError(f"blocks must come in time order: {float(ts[0])!r} < "
                                 f"{self._last[0]!r}")
            ts = np.r_[self._last[0], ts]
            vs = np.vstack([self._last[1], vs])
        self._last = (float(ts[-1]), vs[-1].copy())
        self._fold(ts, vs, min(float(ts[-1]), float(self.edges[-1])))

    def _fold(self, ts: np.ndarray, vs: np.ndarray, stop: float) -> None:
        e = self.edges
        if not ts[0] < stop:
            return
        k, dur, at = _bin_pieces(ts, e, stop)
        if not dur.size:
            return
        vals = vs[at]
        bins = e.size - 1
        self.weight += np.bincount(k, dur, bins)
        for j in range(vals.shape[1]):
            self.total[:, j] += np.bincount(k, dur * vals[:, j], bins)
        first = np.flatnonzero(np.append(True, k[1:] != k[:-1]))
        held = k[first]
        self.low[held] = np.minimum(self.low[held], np.minimum.reduceat(vals, first, axis=0))
        self.high[held] = np.maximum(self.high[held], np.maximum.reduceat(vals, first, axis=0))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Close the series at the last edge: each bin's means (bins × columns; NaN for
        a bin before the first change point) and each column's integral over the bins
        (value-units × s)."""
        if self._last is not None:
            t, v = self._last
            self._last = None
            self._fold(np.array([t]), v.reshape(1, -1), float(self.edges[-1]))
        out = np.full(self.total.shape, np.nan)
        has = self.weight > 0
        out[has] = self.total[has] / self.weight[has, None]
        # the exact mean lies within the values held in its bin; clip away rounding
        out[has] = np.clip(out[has], self.low[has], self.high[has])
        return out, self.total.sum(axis=0)


def duration_above(
    t: ArrayLike, v: ArrayLike, threshold: float, t_end: float, t_start: float | None = None
) -> float:
    """Time (s) within ``[t_start, t_end]`` with the value strictly above ``threshold``."""
    dur, vals = _pieces(t, v, t_end, t_start)
    return float(np.sum(dur[vals > threshold]))


def mean_ci(samples: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Mean across replications and the half-width of its Student-t confidence interval.

    ``samples``: one figure per independent replication (any unit; the result
    has the same unit); ``confidence``: the interval's coverage, in (0, 1). With a
    single sample the half-width is ``nan`` (no spread can be estimated).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x = np.asarray(samples, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("samples must be a non-empty 1-D sequence of numbers")
    if not np.isfinite(x).all():
        raise ValueError("samples must be finite numbers")
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        return lo, (math.nan if x.size == 1 else 0.0)
    m = min(max(float(np.mean(x)), lo), hi)
    sd = float(np.std(x, ddof=1))
    from scipy import stats  # here: importing scipy.stats takes about a second

    t = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1))
    return m, t * sd / math.sqrt(x.size)
