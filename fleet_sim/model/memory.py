"""RAM ledger of one kernel: reservations, usage, limits and the OOM victim (docs/model.md §4).

A kernel (a host's OS, or a VM's guest OS) has ``capacity_mib`` of RAM. Each
*account* (an OS footprint, a VM, a process, a container) has:

- ``reserved_mib``: what admission set aside for it. The sum of reservations never
  exceeds the capacity: :meth:`MemoryLedger.open` refuses what does not fit.
- ``used`` RAM, linear in time (``used_mib + growth_mib_s · (t − t_ref_s)``), so a
  leak is exact between events; it may exceed the reservation, and the sum over
  accounts may exceed the capacity: that is memory pressure.
- an optional ``limit_mib`` (a container's ``memory.max``).

:meth:`MemoryLedger.next_pressure` says when the next limit or the capacity will be
passed; :meth:`MemoryLedger.oom_victim` names the process the kernel kills then
(the largest, like Linux's OOM killer, whose badness score is dominated by RSS).
The ledger is plain state: no SimPy; the kernel that owns it schedules the checks.
Totals are recomputed with ``math.fsum`` from the accounts, never kept as running
sums, so closing an account restores the exact prior state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleet_sim.errors import CapacityError


@dataclass
class Account:
    """One owner's RAM on a kernel (MiB; ``growth_mib_s`` MiB/s from ``t_ref_s``)."""

    owner: str
    reserved_mib: float
    used_mib: float
    growth_mib_s: float = 0.0
    t_ref_s: float = 0.0
    limit_mib: float | None = None
    killable: bool = True

    def used_at(self, t: float) -> float:
        """RAM in use at time ``t`` (MiB)."""
        return self.used_mib + self.growth_mib_s * (t - self.t_ref_s)


class MemoryLedger:
    """RAM accounts of one kernel named ``name`` with ``capacity_mib`` of RAM."""

    def __init__(self, name: str, capacity_mib: float):
        if not capacity_mib > 0:
            raise ValueError(f"{name}: capacity_mib must be > 0, got {capacity_mib!r}")
        self.name = name
        self.capacity_mib = float(capacity_mib)
        self.accounts: dict[str, Account] = {}

    # ------------------------------------------------------------------ reservations
    @property
    def reserved_mib(self) -> float:
        """Sum of reservations (MiB); never above the capacity."""
        return math.fsum(a.reserved_mib for a in self.accounts.values())

    @property
    def free_mib(self) -> float:
        """Capacity not reserved (MiB)."""
        return self.capacity_mib - self.reserved_mib

    def fits(self, reserved_mib: float) -> bool:
        """Whether a reservation of ``reserved_mib`` fits now."""
        return self.reserved_mib + reserved_mib <= self.capacity_mib

    def open(self, owner: str, reserved_mib: float = 0.0, *, used_mib: float = 0.0,
             growth_mib_s: float = 0.0, limit_mib: float | None = None,
             killable: bool = True, t: float = 0.0) -> Account:
        """Open ``owner``'s account with a reservation (MiB) and its usage from ``t``.

        Raises CapacityError if the reservation does not fit (nothing changes then),
        ValueError if ``owner`` already has an account or a size is negative.
        """
        if owner in self.accounts:
            raise ValueError(f"{self.name}: {owner!r} already has a RAM account")
        if reserved_mib < 0 or used_mib < 0 or (limit_mib is not None and limit_mib < 0):
            raise ValueError(f"{self.name}: RAM sizes must be >= 0 (owner {owner!r})")
        if not self.fits(reserved_mib):
            raise CapacityError(
                f"{self.name}: cannot reserve {reserved_mib:g} MiB for {owner!r}: only "
                f"{self.free_mib:g} of {self.capacity_mib:g} MiB are free")
        acc = Account(owner, float(reserved_mib), float(used_mib), float(growth_mib_s),
                      float(t), limit_mib, killable)
        self.accounts[owner] = acc
        return acc

    def close(self, owner: str) -> Account:
        """Remove ``owner``'s account (its reservation and usage); return it."""
        return self.accounts.pop(owner)

    # ------------------------------------------------------------------ usage
    def set_usage(self, owner: str, used_mib: float, growth_mib_s: float = 0.0,
                  t: float = 0.0) -> None:
        """``owner`` uses ``used_mib`` at ``t``, growing by ``growth_mib_s`` from then."""
        acc = self.accounts[owner]
        acc.used_mib, acc.growth_mib_s, acc.t_ref_s = float(used_mib), float(growth_mib_s), t

    def used_at(self, t: float) -> float:
        """Total RAM in use at ``t`` (MiB); may exceed the capacity (pressure)."""
        return math.fsum(a.used_at(t) for a in self.accounts.values())

    def next_pressure(self, t: float) -> tuple[float, str | None] | None:
        """The first time ``>= t`` an account passes its limit (``(time, owner)``) or the
        total passes the capacity (``(time, None)``); None if usage never does.

        Passing means reaching the limit while growing, or being above it at ``t``.
        At equal times a limit comes first (the cgroup OOM fires before the global one).
        """
        best: tuple[float, str | None] | None = None
        for a in self.accounts.values():
            if a.limit_mib is None:
                continue
            used = a.used_at(t)
            if used > a.limit_mib:
                cross = t
            elif a.growth_mib_s > 0:
                cross = t + (a.limit_mib - used) / a.growth_mib_s
            else:
                continue
            if best is None or cross < best[0]:
                best = (cross, a.owner)
        used = self.used_at(t)
        growth = math.fsum(a.growth_mib_s for a in self.accounts.values())
        if used > self.capacity_mib:
            cross = t
        elif growth > 0:
            cross = t + (self.capacity_mib - used) / growth
        else:
            return best
        if best is None or cross < best[0]:
            best = (cross, None)
        return best

    def oom_victim(self, t: float) -> str | None:
        """The killable owner using the most RAM at ``t`` (ties: by name), or None."""
        best: tuple[float, str] | None = None
        for a in self.accounts.values():
            used = a.used_at(t)
            if not a.killable or used <= 0:
                continue
            key = (used, a.owner)
            if best is None or key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
                best = key
        return None if best is None else best[1]

    def state(self) -> tuple:
        """A hashable snapshot of every account (for tests and invariants)."""
        return tuple(sorted(
            (a.owner, a.reserved_mib, a.used_mib, a.growth_mib_s, a.t_ref_s, a.limit_mib,
             a.killable) for a in self.accounts.values()))
