"""Garbage collection around a long run (fleet_sim.model.collection)."""

from __future__ import annotations

import gc
import weakref

from fleet_sim.model.collection import long_run


class _Node:
    pass


def _cycle() -> weakref.ref:
    """A garbage cycle (what a finished run leaves: its model refers to itself)."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_a_long_run_frees_the_cycles_earlier_runs_left_before_freezing():
    gc.disable()  # no automatic pass may free it first
    try:
        left = _cycle()
        assert left() is not None
        before = gc.get_threshold()
        with long_run():
            assert left() is None  # collected, not frozen for the rest of the process
        assert gc.get_threshold() == before
    finally:
        gc.enable()
