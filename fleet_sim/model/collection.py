"""Cyclic garbage collection set for a long run (process-wide, restored afterwards).

A run allocates millions of short-lived objects (jobs, heap entries, rows) next to
a large tree that lives for the whole run. With CPython's defaults the collector
runs every 700 allocations and its full passes walk the whole tree again and
again, so the cost per event grows with the fleet (5.1 µs per event at 5,000
hosts against 3.7 at 100 in ``benchmarks/scale.py``). Inside :func:`long_run`
what exists when it starts is frozen (left out of every pass) and the young
generation is collected every 50,000 allocations: the cost per event stays flat.
Nothing is lost: garbage cycles are still collected, only less often. Before
freezing, one full collection frees what earlier runs left in cycles: frozen, it
would stay until the process ends, so a process running run after run (a sweep's
worker, a notebook, a study's driver) would grow by a model per run (about 100 MiB
per PlanetLab day, 12 GiB per worker after 90 days).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the young generation (CPython: 700)."""


@contextmanager
def long_run() -> Iterator[None]:
    """Run the block with the built model frozen and fewer collections."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
