"""Named random streams spawned from one seed (docs/model.md §8).

``Streams(seed).get("workload.web.spikes")`` returns a ``numpy.random.Generator``
whose draws depend only on the seed and the name, so adding a component never
changes another component's draws, and the same workloads see the same spikes
under every hosting mode (common random numbers).
"""

from __future__ import annotations

import zlib

import numpy as np


def stable_id(name: str) -> int:
    """A process-independent 32-bit id of ``name`` (CRC32 of its UTF-8 bytes)."""
    return zlib.crc32(name.encode("utf-8"))


class Streams:
    """Factory and cache of named ``numpy.random.Generator`` streams for one run."""

    def __init__(self, seed: int):
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self._cache: dict[str, np.random.Generator] = {}

    def get(self, name: str) -> np.random.Generator:
        """The generator of stream ``name``; the same object on every call."""
        gen = self._cache.get(name)
        if gen is None:
            seq = np.random.SeedSequence(entropy=self.seed, spawn_key=(stable_id(name),))
            gen = self._cache[name] = np.random.Generator(np.random.PCG64(seq))
        return gen


def replication_seeds(base_seed: int, replications: int) -> list[int]:
    """Integer seeds for ``replications`` runs: replication 0 uses ``base_seed`` itself
    (so a one-replication sweep repeats ``fleet-sim run``), replication ``r ≥ 1`` the
    ``r``-th child of ``SeedSequence(base_seed)`` (independent streams; adding
    replications never changes the seeds of the earlier ones)."""
    children = np.random.SeedSequence(base_seed).spawn(replications)
    return [base_seed, *(int(c.generate_state(1, dtype=np.uint32)[0]) for c in children[1:])]
