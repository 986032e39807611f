"""Exact statistics of piecewise-constant series stored as change points (DESIGN §5).

Pure math. A series is given by change times ``t`` (s, non-decreasing) and values
``v``: ``v[i]`` holds from ``t[i]`` until ``t[i + 1]``, the last value until
``t_end``. When several change points share one time, the last one wins (the
others hold for zero time). Statistics are taken over the window
``[t_start, t_end]``; ``t_start`` defaults to ``t[0]`` and trims a warm-up.
Results are exact integrals over the pieces, never samples: an integral is in
value-units × s, a mean or percentile in value-units, a duration in s.

:func:`mean_ci` summarises one figure across independent replications with a
Student-t confidence interval.
"""

from __future__ import annotations

import math
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
    window. Returns a float for a scalar ``q``, else an array of ``q``'s shape.
    """
    qs = np.asarray(q, dtype=float)
    if np.isnan(qs).any() or (qs < 0).any() or (qs > 1).any():
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    dur, vals = _pieces(t, v, t_end, t_start)
    if dur.size == 0:
        raise ValueError("the window [t_start, t_end] has zero length: percentiles are undefined")
    order = np.argsort(vals, kind="stable")
    sorted_vals = vals[order]
    cum = np.cumsum(dur[order])
    idx = np.searchsorted(cum, qs * cum[-1], side="left")
    idx = np.where(qs >= 1, sorted_vals.size - 1, np.minimum(idx, sorted_vals.size - 1))
    out = sorted_vals[idx]
    return float(out) if out.ndim == 0 else out


def duration_above(
    t: ArrayLike, v: ArrayLike, threshold: float, t_end: float, t_start: float | None = None
) -> float:
    """Time (s) within ``[t_start, t_end]`` with the value strictly above ``threshold``."""
    dur, vals = _pieces(t, v, t_end, t_start)
    return float(np.sum(dur[vals > threshold]))


# Two-sided 95 % Student-t quantiles t_{0.975, df} for df = 1 … 30 (3 decimals, as tabulated).
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_quantile_95(df: int) -> float:
    """Two-sided 95 % Student-t critical value for ``df`` >= 1 degrees of freedom.

    df <= 30: the standard table. df > 30: the Cornish-Fisher expansion of t in
    powers of 1/df around the normal quantile 1.95996 (error < 1e-5 there),
    which tends to 1.96 and is not anti-conservative like a flat 1.96.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df!r}")
    if df <= len(_T95):
        return _T95[df - 1]
    z, n = _Z975, float(df)
    return (
        z
        + (z**3 + z) / (4 * n)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * n**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * n**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * n**4)
    )


def mean_ci(samples: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Mean across replications and the half-width of its Student-t confidence interval.

    ``samples``: one figure per independent replication (any unit; the result
    has the same unit). Only ``confidence=0.95`` is supported. With a single
    sample the half-width is ``nan`` (no spread can be estimated).
    """
    if confidence != 0.95:
        raise ValueError(f"only confidence=0.95 is supported, got {confidence!r}")
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
    return m, t_quantile_95(x.size - 1) * sd / math.sqrt(x.size)
