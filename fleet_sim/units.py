"""Units used everywhere (docs/model.md §1), as named conversion constants.

time: s (float, clock starts at 0) · CPU rate: cores · CPU work: core-s ·
memory: MiB · data: MB, bandwidth MB/s · power W, energy kWh, cost $.
Names of numeric quantities carry their unit (``ram_mib``, ``duration_s``).
"""

from __future__ import annotations

MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86_400.0
MONTH_S = 30 * DAY_S
GIB_MIB = 1024.0
GB_MB = 1000.0
J_PER_KWH = 3.6e6


def joules_to_kwh(energy_j: float) -> float:
    """Convert W·s (J) to kWh."""
    return energy_j / J_PER_KWH
