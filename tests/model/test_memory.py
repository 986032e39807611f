"""The RAM ledger of a kernel (docs/model.md §4): reservations, pressure times, OOM victims."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_sim.errors import CapacityError
from fleet_sim.model.memory import MemoryLedger


def test_a_reservation_that_does_not_fit_is_refused_and_changes_nothing():
    ledger = MemoryLedger("h", 1000)
    ledger.open("a", 600)
    before = ledger.state()
    with pytest.raises(CapacityError, match="cannot reserve 500 MiB for 'b': only 400 of 1000"):
        ledger.open("b", 500)
    assert ledger.state() == before


def test_a_leak_reaches_its_limit_at_the_exact_time():
    # 500 MiB growing 10 MiB/s under a 1000 MiB limit: passes it at t = 50
    ledger = MemoryLedger("h", 4096)
    ledger.open("c", 500, used_mib=500, growth_mib_s=10, limit_mib=1000)
    assert ledger.next_pressure(0.0) == (50.0, "c")


def test_usage_already_above_the_limit_is_pressure_now():
    ledger = MemoryLedger("h", 4096)
    ledger.open("c", 500, used_mib=1200, limit_mib=1000, t=3.0)
    assert ledger.next_pressure(7.0) == (7.0, "c")


def test_the_kernel_runs_out_when_the_total_passes_its_ram():
    # 1024 (OS) + 2000 + 100 growing 10 MiB/s reach 4096 MiB at t = 97.2
    ledger = MemoryLedger("h", 4096)
    ledger.open("os", 1024, used_mib=1024, killable=False)
    ledger.open("big", 2000, used_mib=2000)
    ledger.open("leaky", 100, used_mib=100, growth_mib_s=10)
    t, owner = ledger.next_pressure(0.0)
    assert owner is None
    assert t == pytest.approx(97.2, rel=1e-12)
    # the kernel kills the largest process, not the leaking one
    assert ledger.oom_victim(t) == "big"


def test_the_victim_is_never_unkillable_and_ties_go_by_name():
    ledger = MemoryLedger("h", 10_000)
    ledger.open("os", 5000, used_mib=5000, killable=False)
    ledger.open("b", 100, used_mib=300)
    ledger.open("a", 100, used_mib=300)
    assert ledger.oom_victim(0.0) == "a"


def test_nothing_grows_means_no_pressure():
    ledger = MemoryLedger("h", 1000)
    ledger.open("a", 100, used_mib=100)
    assert ledger.next_pressure(0.0) is None


sizes = st.lists(st.floats(0.0, 2000.0, allow_nan=False), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.floats(1.0, 8000.0), sizes, st.floats(0.0, 3000.0))
def test_reserved_never_exceeds_capacity_and_release_restores_the_exact_state(
        capacity, reservations, extra):
    ledger = MemoryLedger("h", capacity)
    for i, r in enumerate(reservations):
        with contextlib.suppress(CapacityError):
            ledger.open(f"a{i}", r, used_mib=r / 2, growth_mib_s=r / 100)
        assert ledger.reserved_mib <= ledger.capacity_mib
    before = (ledger.state(), ledger.reserved_mib, ledger.free_mib, ledger.used_at(5.0),
              ledger.next_pressure(1.0))
    try:
        ledger.open("new", extra, used_mib=extra, limit_mib=extra)
    except CapacityError:
        assert ledger.reserved_mib + extra > ledger.capacity_mib
    else:
        ledger.close("new")
    after = (ledger.state(), ledger.reserved_mib, ledger.free_mib, ledger.used_at(5.0),
             ledger.next_pressure(1.0))
    assert after == before
