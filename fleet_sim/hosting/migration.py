"""Live migration of a running VM between hosts: how long it takes and what it costs
(docs/model.md §12.5).

Two models, of the VM's RAM and the bandwidth its transfer gets:

- :func:`cloudsim_migration`: CloudSim 3.0.3's: the VM's RAM over half the host's
  bandwidth (the other half is left to the VMs), no downtime; meanwhile the VM
  gets ``1 − cpu_loss`` of its CPU on the source (10 %, the overhead of tracking
  dirty pages), the target reserves ``cpu_loss`` of its demand, and its RAM is
  reserved on both hosts.
- :func:`precopy_migration`: iterative pre-copy (Clark et al., NSDI 2005): round 0
  sends all the RAM while the VM runs; each next round sends what the VM dirtied
  during the previous one (``dirty_mb_s`` × its length); rounds stop when what is
  left is at most ``stop_mb`` or after ``max_rounds``, then the VM is paused and
  the rest is sent (the downtime). A dirty rate at or above the bandwidth never
  converges: the round limit ends it. :func:`precopy_rounds` is the rule itself, for
  whatever carries the rounds (a fixed bandwidth here, the fleet's network in
  :mod:`fleet_sim.hosting.consolidation`).

RAM is in MiB (the fleet's unit), transfers in MB and MB/s.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

MB_PER_MIB = 2**20 / 1e6
"""MB in one MiB."""
MIGRATION_CPU_LOSS = 0.1
"""Share of its CPU a VM loses on the source while it migrates (CloudSim's 10 %)."""


@dataclass(frozen=True)
class MigrationTiming:
    """How a live migration goes: ``duration_s`` from start to the VM running on the
    target, of which the last ``downtime_s`` with the VM paused; ``sent_mb`` in all,
    over ``rounds`` copy rounds (stop-and-copy included)."""

    duration_s: float
    downtime_s: float
    sent_mb: float
    rounds: int


def _check(ram_mib: float, bandwidth_mb_s: float) -> None:
    if not ram_mib >= 0:
        raise ValueError(f"ram_mib must be >= 0, got {ram_mib!r}")
    if not bandwidth_mb_s > 0:
        raise ValueError(f"bandwidth_mb_s must be > 0, got {bandwidth_mb_s!r}")


def cloudsim_migration(ram_mib: float, host_bandwidth_mb_s: float) -> MigrationTiming:
    """CloudSim's model: ``ram_mib`` over half of ``host_bandwidth_mb_s``, no downtime."""
    _check(ram_mib, host_bandwidth_mb_s)
    mb = ram_mib * MB_PER_MIB
    return MigrationTiming(mb / (host_bandwidth_mb_s / 2.0), 0.0, mb, 1)


def precopy_rounds(ram_mib: float, dirty_mb_s: float, stop_mb: float = 50.0,
                   max_rounds: int = 30) -> Generator[tuple[float, bool], float, None]:
    """Pre-copy's rounds, whatever carries them: yields ``(mb, paused)`` for each round,
    the MB it sends and whether the VM is paused meanwhile (only the last round, the
    stop-and-copy: the downtime), and is sent back how long that round took (s).

    Round 0 sends the RAM; round i what the VM dirtied during round i − 1
    (``dirty_mb_s`` × its length, never more than its RAM); after the round that leaves
    at most ``stop_mb`` to send, or after ``max_rounds`` pre-copy rounds, the rest goes
    with the VM paused. A dirty rate at or above the bandwidth never converges: the
    round limit ends it."""
    if not ram_mib >= 0:
        raise ValueError(f"ram_mib must be >= 0, got {ram_mib!r}")
    if not dirty_mb_s >= 0:
        raise ValueError(f"dirty_mb_s must be >= 0, got {dirty_mb_s!r}")
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds!r}")
    ram_mb = ram_mib * MB_PER_MIB
    to_send, rounds = ram_mb, 0
    while True:
        round_s = yield to_send, False
        rounds += 1
        to_send = min(ram_mb, dirty_mb_s * round_s)
        if to_send <= stop_mb or rounds >= max_rounds:
            break
    yield to_send, True  # stop-and-copy


def precopy_migration(ram_mib: float, bandwidth_mb_s: float, dirty_mb_s: float,
                      stop_mb: float = 50.0, max_rounds: int = 30) -> MigrationTiming:
    """Pre-copy (:func:`precopy_rounds`) over a link giving the transfer
    ``bandwidth_mb_s`` throughout."""
    _check(ram_mib, bandwidth_mb_s)
    rounds = precopy_rounds(ram_mib, dirty_mb_s, stop_mb, max_rounds)
    sends = [next(rounds)[0]]
    while True:
        try:
            sends.append(rounds.send(sends[-1] / bandwidth_mb_s)[0])
        except StopIteration:
            break
    times = [mb / bandwidth_mb_s for mb in sends]
    return MigrationTiming(sum(times), times[-1], sum(sends), len(sends))
