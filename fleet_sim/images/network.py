"""Flow-level network: transfers share link capacities by max-min fairness (docs/model.md §5).

Roles: a :class:`Link` has a capacity (MB/s); a node (the registry, a host) owns
an ``up`` link (what it sends) and a ``down`` link (what it receives); a rack,
if any, adds an ``up`` and a ``down`` link between its hosts and the core. A
transfer is one flow along the route ``src.up → [src rack.up → dst rack.down]
→ dst.down`` (rack links only when the racks differ). There are no packets. A
:class:`Transfer` may also run over several paths at once (a multi-source
download, as peer-to-peer swarms do): each path is a flow of its own, the
transfer's rate is their sum, and it ends when that sum has carried its size.
Links made with ``record=False`` are limits rather than wires (a per-host rate
cap, a swarm's content bound): they constrain flows but are not recorded.

Process: the model is an exact fluid one. Whenever flows start or finish, the
network settles the bytes each affected flow and link carried at the old rates,
recomputes the rates of the connected group of flows that share links with the
change (:func:`~fleet_sim.numerics.fairshare.maxmin_flows`, the same fair
sharing as the CPU model), sums each transfer's paths, and keeps ONE pending
wake-up, for the earliest completion; a generation counter makes superseded
wake-ups no-ops. Changes at one instant are batched into one reallocation. There
is no time-step loop.

Recording: one ``links`` row ``(t, link, allocated_mb_s, bytes_mb)`` each time a
link's allocated rate changes; ``bytes_mb`` is what the link carried up to ``t``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

import simpy

from fleet_sim.model.protocols import Recorder
from fleet_sim.numerics.fairshare import maxmin_flows

LINK_COLUMNS = ("t", "link", "allocated_mb_s", "bytes_mb")


class Link:
    """A link of ``capacity_mb_s`` MB/s shared by the flows crossing it."""

    __slots__ = ("bytes_mb", "capacity_mb_s", "flows", "index", "name", "rate_mb_s", "recorded",
                 "t")

    def __init__(self, name: str, capacity_mb_s: float, index: int, recorded: bool = True):
        if capacity_mb_s < 0:
            raise ValueError(f"capacity_mb_s of {name} must be >= 0, got {capacity_mb_s!r}")
        self.name = name
        self.capacity_mb_s = float(capacity_mb_s)
        self.index = index  # position in the network's list of capacities
        self.recorded = recorded
        self.flows: dict[Flow, None] = {}  # active flows, in start order
        self.rate_mb_s = 0.0  # allocated to its flows since t
        self.bytes_mb = 0.0  # carried up to t
        self.t = 0.0

    def settle(self, now: float) -> None:
        """Account for what the link carried since its last change."""
        self.bytes_mb += self.rate_mb_s * (now - self.t)
        self.t = now


class Flow:
    """One path of a transfer over ``links``; ``epoch``: the reallocation that last set its rate."""

    __slots__ = ("epoch", "link_ids", "links", "rate_mb_s", "transfer")

    def __init__(self, links: tuple[Link, ...], transfer: Transfer):
        self.links = links
        self.link_ids = tuple(link.index for link in links)
        self.rate_mb_s = 0.0
        self.transfer = transfer
        self.epoch = -1


class Transfer:
    """``size_mb`` MB to one destination over the paths added to it; ``done`` on arrival.

    Its rate is the sum of its paths' max-min rates; paths may be added and removed
    while it runs (sources joining or leaving). Made by :meth:`Network.open`.
    """

    __slots__ = ("done", "finish_t", "flows", "network", "rate_mb_s", "remaining_mb", "t")

    def __init__(self, network: Network, size_mb: float):
        self.network = network
        self.done = network.env.event()
        self.remaining_mb = float(size_mb)
        self.rate_mb_s = 0.0  # sum of the paths' rates since t
        self.t = network.env.now
        self.finish_t = math.inf
        self.flows: dict[Flow, None] = {}

    def add(self, links: tuple[Link, ...]) -> Flow:
        """A new path over ``links``; returns it (for :meth:`remove`)."""
        flow = Flow(links, self)
        if self.done.triggered:
            return flow
        self.flows[flow] = None
        for link in links:
            link.flows[flow] = None
        self.network._touch(links)
        return flow

    def remove(self, flow: Flow) -> None:
        """Stop sending over path ``flow`` (no-op once the transfer is done)."""
        if self.flows.pop(flow, "gone") == "gone":
            return
        self.settle(self.network.env.now)
        flow.epoch = -1
        for link in flow.links:
            del link.flows[flow]
        self.network._touch(flow.links)
        for other in self.flows:
            self.network._touch(other.links)
        if not self.flows:  # no path left: nothing arrives until one is added
            self.rate_mb_s, self.finish_t = 0.0, math.inf

    def settle(self, now: float) -> None:
        """Account for what arrived since the rate last changed."""
        self.remaining_mb -= self.rate_mb_s * (now - self.t)
        self.t = now


class Network:
    """Links between nodes and racks, and the transfers over them."""

    def __init__(self, env: simpy.Environment, recorder: Recorder):
        self.env = env
        self.links: dict[str, Link] = {}
        self._capacities: list[float] = []
        self._rack_of: dict[str, str | None] = {}
        self._record = recorder.columns("links", LINK_COLUMNS)
        self._dirty: dict[Link, None] = {}
        self._realloc_pending = False
        self._epoch = 0
        # (earliest finish, epoch, flows) of each reallocated group of flows
        self._finishes: list[tuple[float, int, list[Flow]]] = []
        self._wake_t = math.inf
        self._generation = 0

    # --- topology -------------------------------------------------------------------
    def add_link(self, name: str, capacity_mb_s: float, record: bool = True) -> Link:
        """Create link ``name`` (``record=False``: a limit, kept out of the ``links``
        table). Raises ValueError if it exists."""
        if name in self.links:
            raise ValueError(f"link {name!r} already exists")
        link = self.links[name] = Link(name, capacity_mb_s, len(self._capacities), record)
        self._capacities.append(link.capacity_mb_s)
        return link

    def set_capacity(self, link: Link, capacity_mb_s: float) -> None:
        """Change ``link``'s capacity from now on; its flows are re-shared."""
        if capacity_mb_s < 0:
            raise ValueError(f"capacity_mb_s of {link.name} must be >= 0, got {capacity_mb_s!r}")
        if capacity_mb_s != link.capacity_mb_s:
            link.capacity_mb_s = self._capacities[link.index] = float(capacity_mb_s)
            self._touch((link,))

    def add_rack(self, rack: str, up_mb_s: float, down_mb_s: float) -> None:
        """A rack whose hosts reach the core through ``rack.up`` / ``rack.down``."""
        self.add_link(f"{rack}.up", up_mb_s)
        self.add_link(f"{rack}.down", down_mb_s)

    def attach(self, node: str, up_mb_s: float, down_mb_s: float, rack: str | None = None) -> None:
        """Connect ``node`` (in ``rack``, or to the core) with its NIC's two directions."""
        if rack is not None and f"{rack}.up" not in self.links:
            raise ValueError(f"unknown rack {rack!r}; add it with add_rack first")
        self.add_link(f"{node}.up", up_mb_s)
        self.add_link(f"{node}.down", down_mb_s)
        self._rack_of[node] = rack

    def rack_of(self, node: str) -> str | None:
        """The rack of ``node`` (None: attached to the core)."""
        return self._rack_of[node]

    def route(self, src: str, dst: str) -> tuple[Link, ...]:
        """Links a transfer from ``src`` to ``dst`` crosses. Raises KeyError if unknown."""
        a, b = self._rack_of[src], self._rack_of[dst]
        names = [f"{src}.up"]
        if a != b:
            if a is not None:
                names.append(f"{a}.up")
            if b is not None:
                names.append(f"{b}.down")
        names.append(f"{dst}.down")
        return tuple(self.links[n] for n in names)

    # --- transfers ------------------------------------------------------------------
    def transfer(self, src: str, dst: str, size_mb: float,
                 limits: tuple[Link, ...] = ()) -> simpy.Event:
        """Send ``size_mb`` MB from ``src`` to ``dst`` (its flow also crossing the limit
        links ``limits``); the event succeeds on arrival."""
        if src == dst:
            size_mb = 0.0
        transfer = self.open(size_mb)
        if not transfer.done.triggered:
            transfer.add(self.route(src, dst) + limits)
        return transfer.done

    def open(self, size_mb: float) -> Transfer:
        """A transfer of ``size_mb`` MB with no path yet (done at once if empty)."""
        if size_mb < 0:
            raise ValueError(f"size_mb must be >= 0, got {size_mb!r}")
        transfer = Transfer(self, size_mb)
        if size_mb == 0:
            transfer.done.succeed()
        return transfer

    def _touch(self, links: Iterable[Link]) -> None:
        """Mark links changed; reallocate once, after everything else at this instant."""
        self._dirty.update(dict.fromkeys(links))
        if not self._realloc_pending:
            self._realloc_pending = True
            self.env.timeout(0).callbacks.append(self._reallocate)

    def _components(self) -> list[tuple[list[Flow], list[Link]]]:
        """The connected groups (flows sharing links) that contain the dirty links."""
        seen: set[Link] = set()
        groups = []
        for start in self._dirty:
            if start in seen:
                continue
            seen.add(start)
            links, flows, stack = [start], {}, [start]
            while stack:
                for flow in stack.pop().flows:
                    if flow not in flows:
                        flows[flow] = None
                        for link in flow.links:
                            if link not in seen:
                                seen.add(link)
                                links.append(link)
                                stack.append(link)
            groups.append((list(flows), links))
        self._dirty.clear()
        return groups

    def _reallocate(self, _event: simpy.Event) -> None:
        """Settle and re-share each group of flows connected to a change."""
        self._realloc_pending = False
        for flows, links in self._components():
            self._share(flows, links)
        self._schedule_wake()

    def _share(self, flows: list[Flow], links: list[Link]) -> None:
        """New max-min rates of one connected group; note its earliest finish."""
        now = self.env.now
        rates = maxmin_flows(self._capacities, [f.link_ids for f in flows])
        totals = dict.fromkeys(links, 0.0)
        self._epoch += 1
        epoch = self._epoch
        transfers: dict[Transfer, None] = {}
        for flow, rate in zip(flows, rates, strict=True):
            for link in flow.links:
                totals[link] += rate
            flow.rate_mb_s = rate
            flow.epoch = epoch
            transfers[flow.transfer] = None
        first = math.inf
        for transfer in transfers:
            rate = sum(f.rate_mb_s for f in transfer.flows)
            if rate != transfer.rate_mb_s:
                transfer.settle(now)
                transfer.rate_mb_s = rate
                transfer.finish_t = now + transfer.remaining_mb / rate if rate > 0 else math.inf
            first = min(first, transfer.finish_t)
        if first < math.inf:
            heapq.heappush(self._finishes, (first, epoch, flows))
        for link, total in totals.items():
            if total != link.rate_mb_s:
                link.settle(now)
                link.rate_mb_s = total
                if self._record is not None and link.recorded:
                    self._record(now, link.name, total, link.bytes_mb)

    def _next_finish(self) -> float:
        """Time of the earliest completion (entries of superseded groups dropped).

        A group is re-shared as a whole or not at all (it was one connected
        component, and any change to it reaches all of it), so its first flow
        tells whether its entry is current.
        """
        heap = self._finishes
        while heap and heap[0][2][0].epoch != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def _schedule_wake(self) -> None:
        t = self._next_finish()
        if t < self._wake_t:
            self._wake_t = t
            self._generation += 1
            gen = self._generation
            wake = self.env.timeout(max(0.0, t - self.env.now))
            wake.callbacks.append(lambda _e: self._on_wake(gen))

    def _on_wake(self, generation: int) -> None:
        """Complete every flow due now (within float noise), then reallocate."""
        if generation != self._generation:
            return
        now = self.env.now
        self._wake_t = math.inf
        due = now + 1e-9 * max(1.0, now)
        while self._next_finish() <= due:
            _, epoch, group = heapq.heappop(self._finishes)
            for flow in group:
                transfer = flow.transfer
                if flow.epoch == epoch and transfer.finish_t <= due:
                    for path in transfer.flows:
                        path.epoch = -1  # done: no group holds it any more
                        for link in path.links:
                            del link.flows[path]
                        self._touch(path.links)
                    transfer.flows.clear()
                    transfer.remaining_mb = 0.0
                    transfer.done.succeed()
        if not self._realloc_pending:
            self._schedule_wake()
