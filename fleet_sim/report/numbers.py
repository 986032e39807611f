"""One way to print a number, everywhere: terminal tables, HTML tables and figure labels.

:func:`fmt` prints a value with 4 significant digits and thousands separators,
never in e-notation for everyday magnitudes, fractions as percentages, and float
noise (``1.2e-13``) as 0. :func:`ci_cell` prints "mean ± half-width".
:func:`group_table` is the one "mean ± 95 % CI per group" pivot of a one-row-per-run
table (``summary``, ``rollout_summary``), used by ``fleet-sim report`` and the HTML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fleet_sim.results.schema import TABLES
from fleet_sim.results.tables import replication_summary

#: magnitudes below this are float noise of sums and differences, printed as 0
NOISE = 1e-9
#: printed instead of NaN or a missing value
MISSING = "–"


def unit_label(unit: str) -> str:
    """The unit as printed next to a value :func:`fmt` formatted (fractions become %)."""
    return "%" if unit == "fraction" else unit


def fmt(value: Any, unit: str = "", digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits (a fraction as a percentage with
    one decimal); whole numbers in full; NaN/None as ``–``; |x| < NOISE as 0."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if not isinstance(value, float | np.floating):
        return str(value)
    x = float(value)
    if unit == "fraction":
        return f"{0.0 if abs(x) < NOISE else 100 * x:.1f} %"
    if abs(x) < NOISE or math.isinf(x):
        return "0" if abs(x) < NOISE else str(x)
    if x.is_integer() and abs(x) < 1e12:
        return f"{int(x):,}"
    if abs(x) < 1e-4 or abs(x) >= 1e12:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:,.{decimals}f}"


def ci_cell(mean: float, half: float, unit: str = "") -> str:
    """'mean ± half' (the 95 % CI half-width); the mean alone when there is no spread
    estimate (one run). A fraction is printed in percentage points."""
    if math.isnan(mean):
        return MISSING
    if math.isnan(half):
        return fmt(mean, unit)
    if unit == "fraction":
        return f"{fmt(mean, unit).removesuffix(' %')} ± {fmt(half, unit)}"
    if abs(mean) < 1e-4 or abs(mean) >= 1e12 or abs(half) < NOISE:
        return f"{fmt(mean)} ± {fmt(half, digits=2)}"
    # the half-width to 2 significant digits, the mean to 4 but no finer than the half
    half_decimals = max(0, 1 - math.floor(math.log10(abs(half))))
    decimals = min(half_decimals, max(0, 3 - math.floor(math.log10(abs(mean)))))
    return f"{mean:,.{decimals}f} ± {half:,.{half_decimals}f}"


def group_table(frame: pd.DataFrame, table: str, order: Sequence[str] | None = None,
                keep_constant: bool = True) -> pd.DataFrame:
    """Metrics × groups of a one-row-per-run ``table``: 'mean ± 95 % CI' cells over the
    runs of each group (the mean alone for one run), and a ``unit`` column first.

    Groups are the values of the frame's ``group`` column (:mod:`fleet_sim.report.groups`;
    without it every run is one group, "all runs"); ``order``: group labels in column
    order (default: first seen). Metrics NaN in every run are left out, and so are
    metrics equal in every run unless ``keep_constant``. Text columns (a rollout's
    outcome) show their values with counts.
    """
    units = {c.name: c.unit for c in TABLES[table].columns}
    present = [c for c in units if c in frame and frame[c].notna().any()]
    if not keep_constant:
        present = [c for c in present if frame[c].nunique(dropna=False) > 1]
    numeric = [c for c in present if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    labels = frame["group"].astype(str) if "group" in frame else "all runs"
    frame = frame.assign(_group=labels)
    stats = replication_summary(frame, ["_group"], numeric)
    stats["cell"] = [ci_cell(m, h, units[c]) for c, m, h in
                     zip(stats["metric"], stats["mean"], stats["ci95"], strict=True)]
    for c in (c for c in present if c not in numeric):  # e.g. a rollout's outcome
        counts = frame.groupby(["_group", c], sort=False).size().rename("n").reset_index()
        counts["cell"] = counts[c].astype(str) + " ×" + counts["n"].astype(str)
        joined = counts.groupby("_group", sort=False)["cell"].agg(", ".join).reset_index()
        stats = pd.concat([stats, joined.assign(metric=c)], ignore_index=True)
    columns = list(order) if order is not None else list(dict.fromkeys(frame["_group"]))
    wide = stats.pivot(index="metric", columns="_group", values="cell")
    wide = wide.reindex(index=[c for c in present if c in wide.index],
                        columns=[c for c in columns if c in wide.columns])
    wide.insert(0, "unit", [unit_label(units[m]) for m in wide.index])
    wide.index.name = None
    wide.columns.name = None
    return wide
