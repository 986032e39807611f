"""TraceJobs: a feed over a range of shared columns."""

from __future__ import annotations

import numpy as np
import pytest

from fleet_sim.model.jobs import TraceJobs


def test_a_feed_delivers_its_range_of_the_shared_columns_as_python_numbers():
    times, works = np.array([0.0, 1.0, 2.5, 4.0]), np.array([1.0, 2.0, 3.0, 4.0])
    cores, ids = np.array([1.0, 0.5, 2.0, 1.0]), np.array([7, 3, 9, 1])
    feed = TraceJobs(times, works, cores, ids, start=1, stop=3)
    rows = list(feed.arrivals())
    assert rows == [(1.0, 2.0, 0.5, 3), (2.5, 3.0, 2.0, 9)]
    assert all(type(v) in (float, int) for row in rows for v in row)
    assert feed.columns[0] is times  # shared, not copied
    assert list(TraceJobs([0.0], [1.0], [1.0], [5]).arrivals()) == [(0.0, 1.0, 1.0, 5)]


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="one length"):
        TraceJobs([0.0, 1.0], [1.0], [1.0, 1.0], [0, 1])
