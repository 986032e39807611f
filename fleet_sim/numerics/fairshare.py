"""Weighted max-min fair sharing (water-filling), flat and over a tree (docs/model.md §2).

Pure math: no simulator, no domain words. The CPU scheduler and the network model
both call these functions; there is no second allocator.

Flat problem: share ``capacity`` among children with upper limits ``hi`` (demand
already clipped by caps), lower bounds ``lo`` (reservations, clipped to ``hi``) and
weights ``w > 0``. The answer is ``a_i = clamp(w_i * L, lo_i, hi_i)`` with the
water level ``L`` chosen so that ``sum(a) == capacity``, or ``a = hi`` when
everything fits. This is work-conserving (nothing idle while a child below its
limit wants more) and weights are respected between unsatisfied children
(``a_i / w_i == L`` for every child strictly between its bounds).

Tree problem: every node has a weight, an optional cap, an optional reservation
and a ``scale`` (resource units consumed per unit handed to its children, e.g. a
virtualization overhead of 1.1). Leaves have a demand. A node's effective demand
is ``min(cap, scale * sum(children's effective demands))``; allocation flows top
down, each node water-filling what it got among its children.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

INF = math.inf


def waterfill(
    capacity: float,
    hi: Sequence[float],
    weights: Sequence[float] | None = None,
    lo: Sequence[float] | None = None,
) -> list[float]:
    """Weighted max-min fair shares of ``capacity`` among children.

    Parameters are in any one unit (cores, MB/s). ``hi``: each child's limit
    (``min(demand, cap)``), ``>= 0``. ``weights``: positive shares (default 1).
    ``lo``: reservations (default 0), clipped to ``hi``. If the reservations alone
    exceed ``capacity`` they are scaled down in proportion.

    Raises ValueError if a weight is not positive or a limit is negative.
    """
    n = len(hi)
    if n == 0:
        return []
    w = [1.0] * n if weights is None else list(weights)
    if len(w) != n:
        raise ValueError("weights and hi must have the same length")
    total_w = sum(w)
    if not min(w) > 0 or total_w != total_w:  # (x != x) is NaN
        raise ValueError(f"weights must be > 0, got {w!r}")
    total_hi = sum(hi)
    if not min(hi) >= 0 or total_hi != total_hi:
        raise ValueError(f"limits must be >= 0 (cores or MB/s), got {list(hi)!r}")
    if lo is not None and (len(lo) != n or not min(lo) >= 0):
        raise ValueError(f"reservations must be {n} values >= 0, got {list(lo)!r}")
    if total_hi <= capacity:
        return list(hi)
    return _fill(capacity, hi, w, lo)


def _fill(capacity: float, hi: Sequence[float], w: list[float],
          lo: Sequence[float] | None) -> list[float]:
    """Water-filling of inputs already checked, with ``sum(hi) > capacity``."""
    if capacity <= 0:
        return [0.0] * len(hi)
    if lo is None or not any(lo):
        return _fill_no_floor(capacity, hi, w)
    return _fill_with_floor(capacity, hi, w, [min(a, b) for a, b in zip(lo, hi, strict=True)])


def _fill_no_floor(capacity: float, hi: Sequence[float], w: list[float]) -> list[float]:
    """Classic progressive filling: satisfy children in order of hi/w."""
    ratios = [h / x for h, x in zip(hi, w, strict=True)]
    order = sorted(range(len(hi)), key=ratios.__getitem__)
    out = [0.0] * len(hi)
    rest_c = capacity
    # weight still in play after k children are satisfied, summed from the end
    # (no cancellation when weights differ by orders of magnitude)
    suffix_w = [0.0] * (len(order) + 1)
    for k in range(len(order) - 1, -1, -1):
        suffix_w[k] = suffix_w[k + 1] + w[order[k]]
    for k, i in enumerate(order):
        level = rest_c / suffix_w[k]
        if hi[i] <= w[i] * level:
            out[i] = hi[i]
            rest_c -= hi[i]
        else:
            for j in order[k:]:
                out[j] = w[j] * level
            break
    return out


def _fill_with_floor(
    capacity: float, hi: Sequence[float], w: list[float], lo: list[float]
) -> list[float]:
    """Sweep the water level L over the breakpoints of sum(clamp(w L, lo, hi))."""
    total_lo = math.fsum(lo)
    if total_lo >= capacity:
        return [x * capacity / total_lo for x in lo]
    # breakpoints: at lo/w a child starts rising (slope +w), at hi/w it stops (-w)
    events = sorted(
        [(lo[i] / w[i], w[i]) for i in range(len(hi))]
        + [(hi[i] / w[i], -w[i]) for i in range(len(hi))]
    )
    level, value, slope = 0.0, total_lo, 0.0
    for pos, dslope in events:
        reach = value + slope * (pos - level)
        if reach >= capacity and slope > 0:
            level += (capacity - value) / slope
            break
        level, value, slope = pos, reach, slope + dslope
    return [min(max(w[i] * level, lo[i]), hi[i]) for i in range(len(hi))]


class FairNode:
    """A node of a sharing tree: weight, cap, reservation, scale; a leaf has a demand.

    ``eff`` (effective demand) and ``alloc`` (allocation, in the parent's units)
    are written by :func:`allocate_tree`.
    """

    __slots__ = ("alloc", "cap", "children", "demand", "eff", "floor", "parent", "scale",
                 "weight")

    def __init__(self, weight: float = 1.0, cap: float = INF, floor: float = 0.0,
                 scale: float = 1.0, demand: float = 0.0):
        if not weight > 0:
            raise ValueError(f"weight must be > 0, got {weight!r}")
        if not (cap >= 0 and floor >= 0 and demand >= 0 and scale > 0):  # also rejects NaN
            raise ValueError("cap, floor and demand must be >= 0 and scale > 0")
        self.weight = weight
        self.cap = cap
        self.floor = floor
        self.scale = scale
        self.demand = demand
        self.children: list[FairNode] = []
        self.parent: FairNode | None = None
        self.eff = 0.0
        self.alloc = 0.0

    def add(self, child: FairNode) -> FairNode:
        """Attach ``child`` below this node and return it."""
        child.parent = self
        self.children.append(child)
        return child

    def remove(self, child: FairNode) -> None:
        """Detach ``child`` from this node."""
        self.children.remove(child)
        child.parent = None

    def path_caps(self) -> list[float]:
        """Caps from this node up to the root (for invariant checks)."""
        caps, node = [], self
        while node is not None:
            caps.append(node.cap)
            node = node.parent
        return caps


def effective_demand(node: FairNode) -> float:
    """Compute ``eff`` bottom-up below and at ``node`` and return it."""
    if node.children:
        total = 0.0
        for c in node.children:
            total += effective_demand(c)
        node.eff = min(node.cap, node.scale * total)
    else:
        node.eff = min(node.cap, node.demand)
    return node.eff


def child_shares(node: FairNode, amount: float) -> list[float]:
    """What each of ``node``'s children gets when ``node`` has ``amount``: the water-fill
    of ``amount / scale`` over their effective demands (current), weights and floors."""
    kids = node.children
    inner = amount / node.scale
    effs = [c.eff for c in kids]
    if sum(effs) <= inner:  # all children satisfied: weights and floors do not matter
        return effs
    # the tree's nodes validated their weights, caps and floors when set
    floors = [c.floor for c in kids]
    return _fill(inner, effs, [c.weight for c in kids], floors if any(floors) else None)


def distribute(node: FairNode, amount: float) -> None:
    """Give ``node`` the allocation ``amount`` and share it down its subtree.

    ``eff`` must be current below ``node`` (see :func:`effective_demand`).
    """
    node.alloc = amount
    kids = node.children
    if kids:
        for c, a in zip(kids, child_shares(node, amount), strict=True):
            distribute(c, a)


def allocate_tree(root: FairNode, capacity: float) -> float:
    """Allocate ``capacity`` over the tree under ``root``; return the root's allocation."""
    amount = min(capacity, effective_demand(root))
    distribute(root, amount)
    return amount


def redistribute(node: FairNode, amount: float, dirty: set[FairNode],
                 changed: list[FairNode], inner: list[FairNode] | None = None) -> None:
    """Re-share ``amount`` below ``node``, descending only where something moved.

    Same result as :func:`distribute`, but a child is revisited only if it is in
    ``dirty`` (its subtree's demands changed) or its own allocation changed; leaves
    whose allocation changed are appended to ``changed``, and other nodes whose
    allocation changed to ``inner`` if given. On a saturated host this leaves
    untouched the many children whose share stays at their demand.
    """
    old = node.alloc
    node.alloc = amount
    kids = node.children
    if not kids:
        if amount != old:
            changed.append(node)
        return
    if amount != old and inner is not None:
        inner.append(node)
    if amount == old and node not in dirty:
        return
    for c, a in zip(kids, child_shares(node, amount), strict=True):
        if not c.children:  # a leaf, inline: most children are
            if a != c.alloc:
                c.alloc = a
                changed.append(c)
        elif a != c.alloc or c in dirty:
            redistribute(c, a, dirty, changed, inner)


def maxmin_flows(
    capacities: Sequence[float],
    routes: Sequence[Sequence[int]],
    weights: Sequence[float] | None = None,
    limits: Sequence[float] | None = None,
) -> list[float]:
    """Weighted max-min fair rates of flows that each cross several links.

    ``capacities[l]``: capacity of link ``l`` (any one rate unit, e.g. MB/s);
    only the links some route uses are read, so a caller may pass the capacities
    of a whole network with the flows of one part of it. ``routes[f]``: indices
    of the links flow ``f`` crosses. ``weights``: positive shares (default 1).
    ``limits``: each flow's own maximum rate (default none).

    Progressive filling, bottleneck link first (Bertsekas & Gallager, *Data
    Networks*, §6.5.2): every unfrozen flow runs at ``w_f * L`` while the level
    ``L`` rises; the first link to fill is a bottleneck and freezes the flows
    crossing it, a flow reaching its limit freezes alone, and the rest rise on.
    A link's fill level is ``spare / (weight of its rising flows)``; a heap keeps
    the next one, so the cost is O(sum of route lengths × log). On a single link
    the result equals :func:`waterfill` with ``hi = limits``.

    Raises ValueError if a weight is not positive, a capacity or limit is
    negative, or a flow crosses no link and has no limit.
    """
    import heapq

    n = len(routes)
    w = [1.0] * n if weights is None else [float(x) for x in weights]
    lim = [INF] * n if limits is None else [float(x) for x in limits]
    if len(w) != n or len(lim) != n:
        raise ValueError("weights and limits must have one entry per route")
    if any(not x > 0 for x in w) or any(x < 0 for x in lim):
        raise ValueError("weights must be > 0 and limits >= 0")
    on_link: dict[int, list[int]] = {}  # link -> flows crossing it
    for f, route in enumerate(routes):
        if not route and lim[f] == INF:
            raise ValueError(f"flow {f} crosses no link and has no limit")
        for k in route:
            on_link.setdefault(k, []).append(f)
    spare = {k: float(capacities[k]) for k in on_link}  # capacity not taken by frozen flows
    if any(c < 0 for c in spare.values()):
        raise ValueError("capacities must be >= 0")
    if weights is None:
        rising_w = {k: float(len(fs)) for k, fs in on_link.items()}
    else:
        rising_w = {k: math.fsum(w[f] for f in fs) for k, fs in on_link.items()}
    rising_n = {k: len(fs) for k, fs in on_link.items()}
    version = dict.fromkeys(on_link, 0)
    # entries (level, kind, index, version): kind 0 = a link fills, 1 = a flow hits its limit
    heap = [(spare[k] / rising_w[k], 0, k, 0) for k in on_link]
    heap += [(lim[f] / w[f], 1, f, 0) for f in range(n) if lim[f] < INF]
    heapq.heapify(heap)
    rate = [0.0] * n
    frozen = [False] * n
    left = n
    while left:
        level, kind, i, ver = heapq.heappop(heap)
        if kind == 0:
            if ver != version[i]:
                continue  # stale: the link's level moved since this entry
            batch = [(f, w[f] * level) for f in on_link[i] if not frozen[f]]
        elif frozen[i]:
            continue
        else:
            batch = [(i, lim[i])]
        touched: dict[int, None] = {}
        for f, r in batch:
            rate[f] = r
            frozen[f] = True
            left -= 1
            for k in routes[f]:
                spare[k] -= r
                rising_w[k] -= w[f]
                rising_n[k] -= 1
                touched[k] = None
        for k in touched:
            version[k] += 1
            if rising_n[k]:
                heapq.heappush(heap, (max(level, spare[k] / rising_w[k]), 0, k, version[k]))
    return rate
