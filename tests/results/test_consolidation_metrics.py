"""The consolidation study's figures on hand cases (docs/model.md §12.4)."""

from __future__ import annotations

import math

import pytest

from fleet_sim.numerics.power import LinearPower
from fleet_sim.results.consolidation import (
    HostSeries,
    VmSeries,
    energy_kwh,
    host_shutdowns,
    migration_count,
    pdm,
    slatah,
    slav,
)

POWER = LinearPower(100.0, 200.0)


def test_energy_integrates_power_at_the_utilization_and_nothing_while_off():
    host = HostSeries(t=[0, 3600, 7200], demand=[0.5, 0.0, 1.0], utilization=[0.5, 0.0, 1.0],
                      active=[True, False, True])
    # 150 W for 1 h, off for 1 h, 200 W for 1 h: 350 Wh
    assert energy_kwh(host, POWER, t_end=10_800) == pytest.approx(0.35)
    # from t = 1800 s: 150 W × 0.5 h + 200 W × 1 h
    assert energy_kwh(host, POWER, t_end=10_800, t_start=1800) == pytest.approx(0.275)


def test_a_host_switched_off_for_18_hours_of_the_day_draws_6_hours_of_idle_power():
    host = HostSeries(t=[0, 6 * 3600], demand=[0, 0], utilization=[0, 0], active=[True, False])
    assert energy_kwh(host, POWER, t_end=24 * 3600) == pytest.approx(0.6)


def test_migrations_are_counted_in_the_window():
    assert migration_count([0, 300, 300, 86_400], t_end=86_400) == 3
    assert migration_count([0, 300, 300, 86_400], t_end=86_400, t_start=300) == 2


def test_slatah_is_short_time_over_active_time_summed_over_hosts():
    a = HostSeries(t=[0, 100, 300], demand=[0.5, 1.2, 0.9], utilization=[0.5, 1.0, 0.9],
                   active=[True, True, True])           # short 200 s of 400 s active
    b = HostSeries(t=[0, 200], demand=[1.5, 0.0], utilization=[1.0, 0.0],
                   active=[False, True])                # short only while off; 200 s active
    assert slatah([a, b], t_end=400) == pytest.approx(200 / 600)
    assert slatah([a], t_end=400, t_start=300) == 0.0


def test_rounding_in_the_allocator_is_no_violation():
    h = HostSeries(t=[0], demand=[0.7], utilization=[0.7 * (1 - 1e-12)], active=[True])
    assert slatah([h], t_end=10) == 0.0


def test_pdm_is_cpu_lost_while_migrating_over_cpu_requested():
    moving = VmSeries(t=[0, 100, 150], requested_mips=[1000, 1000, 1000],
                      allocated_mips=[1000, 900, 1000], migrating=[False, True, False])
    starved = VmSeries(t=[0], requested_mips=[500], allocated_mips=[400], migrating=[False])
    # lost 100 MIPS × 50 s while migrating; asked 1000 × 200 + 500 × 200
    assert pdm([moving, starved], t_end=200) == pytest.approx(5000 / 300_000)


def test_slav_is_slatah_times_pdm():
    assert slav(0.05, 0.002) == pytest.approx(1e-4)


def test_undefined_ratios_are_nan():
    off = HostSeries(t=[0], demand=[0], utilization=[0], active=[False])
    idle = VmSeries(t=[0], requested_mips=[0], allocated_mips=[0], migrating=[False])
    assert math.isnan(slatah([off], t_end=10))
    assert math.isnan(pdm([idle], t_end=10))


def test_host_shutdowns_count_on_to_off_changes():
    assert host_shutdowns([True, False, True, False]) == 2
    assert host_shutdowns([False, True, False]) == 2           # CloudSim: idle from the start
    assert host_shutdowns([False, True, False], initially_on=False) == 1
    assert host_shutdowns([True, True]) == 0
