"""Exact quantiles of data too large to hold at once, in a few passes over its chunks.

Pure math. The data is given as a function that yields it again on each call, as
chunks of ``(group, value)`` (and for time-weighted quantiles ``weight``) arrays.
Pass 1 finds each group's count and range, pass 2 counts values in ``BINS``
buckets per group (equal width in log(value) for positive data), pass 3 keeps
only the values of the buckets that hold the wanted ranks and finishes exactly
on them. The results are those of
:func:`numpy.quantile` (``method="linear"``) and of
:func:`fleet_sim.numerics.timeweighted.percentile`, without a sketch's error, in
memory proportional to the groups × buckets plus one bucket's values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from fleet_sim.numerics.timeweighted import TIE_TOLERANCE

#: buckets per group: memory per group, and how few values pass 3 keeps
BINS = 4096

Chunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]
"""Yields ``(group, value)`` arrays of equal length, the same data on every call;
groups are small non-negative integers (codes the caller maps to names)."""
WeightedChunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]]
"""Yields ``(group, value, weight)`` arrays of equal length, the same data on every call."""


def _ranges(chunks: Iterable[tuple]) -> dict[int, list[float]]:
    """group → [count, min, max, total weight] over every chunk."""
    n = np.zeros(0)
    lo, hi, w = np.zeros(0), np.zeros(0), np.zeros(0)
    for chunk in chunks:
        group, value = chunk[0], chunk[1]
        if not len(value):
            continue
        size = int(group.max()) + 1
        if size > n.size:
            grow = size - n.size
            n, w = np.append(n, np.zeros(grow)), np.append(w, np.zeros(grow))
            lo, hi = np.append(lo, np.full(grow, np.inf)), np.append(hi, np.full(grow, -np.inf))
        n[:size] += np.bincount(group, minlength=size)
        w[:size] += np.bincount(group, weights=chunk[2] if len(chunk) > 2 else None,
                                minlength=size)
        np.minimum.at(lo, group, value)
        np.maximum.at(hi, group, value)
    return {int(g): [n[g], lo[g], hi[g], w[g]] for g in np.flatnonzero(n)}


class _Buckets:
    """Each group's values mapped to ``BINS`` buckets over its range: of equal width
    in log(value) when every value is positive (so a heavy tail, as response times
    have, does not crowd most values into one bucket), else of equal width. Any
    monotone map keeps the method exact; this one keeps pass 3 small."""

    def __init__(self, ranges: dict[int, list[float]]):
        self.groups = list(ranges)
        size = max(self.groups) + 1
        self.row = np.full(size, -1, dtype=np.int64)
        self.row[self.groups] = np.arange(len(self.groups))
        self.log = np.zeros(size, dtype=bool)
        self.lo = np.zeros(size)
        span = np.zeros(size)
        for g in self.groups:
            lo, hi = ranges[g][1], ranges[g][2]
            self.log[g] = lo > 0
            if self.log[g]:
                lo, hi = math.log(lo), math.log(hi)
            self.lo[g], span[g] = lo, hi - lo
        self.scale = np.divide(BINS, span, out=np.zeros_like(span), where=span > 0)

    def of(self, group: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Global bucket number (group's row × BINS + bucket) of each value."""
        log = self.log[group]
        x = np.where(log, np.log(np.where(log, value, 1.0)), value)
        b = np.clip(((x - self.lo[group]) * self.scale[group]).astype(np.int64), 0, BINS - 1)
        return self.row[group] * BINS + b


def quantiles(chunks: Chunks, qs: Sequence[float]) -> dict[int, list[float]]:
    """group → [quantile q of its values for q in qs], as ``numpy.quantile`` gives them."""
    ranges = _ranges(chunks())
    if not ranges:
        return {}
    buckets = _Buckets(ranges)
    counts = np.zeros(len(buckets.groups) * BINS)
    for group, value in chunks():
        if len(value):
            counts += np.bincount(buckets.of(group, value), minlength=counts.size)
    cum = np.cumsum(counts.reshape(-1, BINS), axis=1)
    wanted: dict[int, list[int]] = {}  # group row → buckets holding the wanted ranks
    plans: dict[int, list[tuple[float, float, float]]] = {}
    for i, g in enumerate(buckets.groups):
        n = ranges[g][0]
        for q in qs:
            h = (n - 1) * q
            k = math.floor(h)
            plans.setdefault(g, []).append((k, min(k + 1, n - 1), h - k))
            for r in {k, min(k + 1, n - 1)}:
                wanted.setdefault(i, []).append(int(np.searchsorted(cum[i], r, side="right")))
    keep = np.zeros(counts.size, dtype=bool)
    for i, bs in wanted.items():
        keep[[i * BINS + b for b in bs]] = True  # only the buckets of the wanted ranks
    kept_values, kept_buckets = [], []
    for group, value in chunks():
        if len(value):
            b = buckets.of(group, value)
            mask = keep[b]
            kept_values.append(value[mask])
            kept_buckets.append(b[mask])
    values = np.concatenate(kept_values)
    where = np.concatenate(kept_buckets)
    order = np.lexsort((values, where))  # by bucket, then by value
    values, where = values[order], where[order]

    def ranked(i: int, r: float) -> float:
        """The value of rank ``r`` (0-based) of group row ``i``."""
        b = int(np.searchsorted(cum[i], r, side="right"))
        before = cum[i][b - 1] if b > 0 else 0.0
        first = int(np.searchsorted(where, i * BINS + b, side="left"))
        return float(values[first + int(r - before)])

    out: dict[int, list[float]] = {}
    for i, g in enumerate(buckets.groups):
        res = []
        for k, k1, frac in plans[g]:
            a, b = ranked(i, k), ranked(i, k1)
            res.append(float(np.quantile(np.array([a, b]), frac)) if frac else a)
        out[g] = res
    return out


def weighted_quantiles(chunks: WeightedChunks, qs: Sequence[float]
                       ) -> dict[int, list[float]]:
    """group → [the smallest value whose share of the total weight at or below it is
    >= q, for q in qs] (``timeweighted.percentile`` with weights = durations)."""
    ranges = _ranges(chunks())
    if not ranges:
        return {}
    buckets = _Buckets(ranges)
    weights = np.zeros(len(buckets.groups) * BINS)
    for group, value, weight in chunks():
        if len(value):
            weights += np.bincount(buckets.of(group, value), weights=weight,
                                   minlength=weights.size)
    cum = np.cumsum(weights.reshape(-1, BINS), axis=1)
    chosen: dict[int, list[int]] = {}
    for i, g in enumerate(buckets.groups):
        total = ranges[g][3]
        top = int(np.flatnonzero(weights[i * BINS:(i + 1) * BINS])[-1])  # holds the max
        chosen[i] = [min(int(np.searchsorted(cum[i], q * total * (1.0 - TIE_TOLERANCE),
                                             side="left")), top)
                     if q < 1 else top for q in qs]
    keep = np.zeros(weights.size, dtype=bool)
    for i, bs in chosen.items():
        keep[[i * BINS + b for b in bs]] = True
    kv, kw, kb = [], [], []
    for group, value, weight in chunks():
        if len(value):
            b = buckets.of(group, value)
            mask = keep[b]
            kv.append(value[mask])
            kw.append(weight[mask])
            kb.append(b[mask])
    values, ws, where = np.concatenate(kv), np.concatenate(kw), np.concatenate(kb)
    out: dict[int, list[float]] = {}
    for i, g in enumerate(buckets.groups):
        total = ranges[g][3]
        res = []
        for q, b in zip(qs, chosen[i], strict=True):
            sel = where == i * BINS + b
            order = np.argsort(values[sel], kind="stable")
            v, w = values[sel][order], ws[sel][order]
            if q >= 1:
                res.append(float(v[-1]))
                continue
            base = cum[i][b - 1] if b > 0 else 0.0
            j = int(np.searchsorted(base + np.cumsum(w), q * total * (1.0 - TIE_TOLERANCE),
                                    side="left"))
            res.append(float(v[min(j, v.size - 1)]))
        out[g] = res
    return out
