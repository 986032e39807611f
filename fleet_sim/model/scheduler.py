"""HostCpuScheduler: exact fluid CPU sharing on one host (docs/model.md §2).

Between changes every rate is constant, so each job's finish time is exact. On a
change (job arrives or finishes, demand step, node attached or detached) the
scheduler settles the work done so far, re-allocates only the part of the tree
the change can affect, and re-computes the next completion of each pool of jobs
whose rate moved. There is no time-step loop.

*Jobs.* A job joins the :class:`~fleet_sim.model.jobs.JobPool` of its parent's jobs
of its ``max_cores``: a leaf of weight n that gets exactly what its n jobs would get
one by one, and whose jobs progress on one virtual clock. The heap holds one pending
completion per pool, however many jobs queue in it.

*What a change can affect.* If no node on the path from the changed node to the
root is constrained (its children's demand fits its cap, and the host is not
saturated), every node simply gets its effective demand, so only the changed
subtree moves: an arrival on a host with spare cores touches one job and the
nodes on its path, caps or not. Otherwise the subtree of the highest constrained
node is re-shared, descending only where allocations move, or the whole tree when
the host is saturated before or after the change. A cap change (a CFS quota
throttling) is pushed up the same way. Recording follows the same rule: a row is
written only for a recorded node whose demand or allocation moved.

*Lazy time.* The scheduler keeps its own clock ``now`` and a heap of its own
future events (job completions and *feeds*: pre-drawn arrival streams and demand
steps). ``advance(t)`` processes them in time order up to ``t``. The host calls
it before any outside interaction, so a host that nobody touches costs no SimPy
events at all; results are identical to waking at every event because a host's
evolution depends only on its own state and feeds between interactions.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Protocol

from fleet_sim.model.cputree import CpuNode, CpuShare
from fleet_sim.model.jobs import JobPool
from fleet_sim.numerics.fairshare import INF, child_shares, distribute, redistribute

#: heap entry kinds; at equal times completions go before feed events
FINISH, FEED = 0, 1
#: the heap is rebuilt without superseded completions once it holds more of them than
#: this and than live entries (n pools re-rated at every event on a saturated host would
#: otherwise leave n stale entries per event)
COMPACT_MIN = 4096


class Feed(Protocol):
    """A source of timed changes that the scheduler fires by itself."""

    def fire(self, sched: HostCpuScheduler, t: float) -> float | None:
        """Apply the change due at ``t``; return the time of the next one, or None."""
        ...


NodeWriter = Callable[[CpuNode], Callable[[tuple[float, ...]], None]]


class HostCpuScheduler:
    """Shares ``cores`` of one host over a tree rooted at ``root``.

    ``speed`` is the per-core speed factor: a job progresses at
    ``allocated cores × speed`` core-s per second. Callbacks (set by the host):
    ``on_host((t, used_cores, ram_used_mib))`` when the host's total allocation changes
    (``ram_used_mib``: the host's RAM in use, which the host keeps here for that row),
    ``on_node(node)``: the writer of a node of one of ``recorded_tables``, called
    once per node (kept in ``node.rec``), which gets ``(t, *share)`` (a
    :class:`~fleet_sim.model.cputree.CpuShare`) each time the node's row changes,
    ``on_job_done(job)`` when a job completes.
    """

    def __init__(self, cores: float, root: CpuNode, speed: float = 1.0):
        if not cores > 0 or not speed > 0:
            raise ValueError(f"cores and speed must be > 0, got {cores!r}, {speed!r}")
        self.capacity = float(cores)
        self.speed = float(speed)
        self.root = root
        self.now = 0.0
        self._heap: list[tuple[float, int, int, object]] = []
        self._stale = 0  # superseded completions still in the heap
        self._seq = itertools.count()
        self.n_constrained = 0
        self.used_core_s = 0.0       # ∫ allocated cores dt (host busy time)
        self.delivered_core_s = 0.0  # ∫ Σ job progress rates dt (work done on jobs)
        self._job_rate = 0.0
        self.events = 0
        self.jobs_done = 0
        self.on_host: Callable[[tuple[float, float, float]], None] | None = None
        self.ram_used_mib = 0.0
        self.on_node: NodeWriter | None = None
        self.recorded_tables: frozenset[str] = frozenset()  # tables ``on_node`` writes
        self.on_job_done: Callable[[object], None] | None = None
        self._metered: dict[CpuNode, None] = {}  # insertion-ordered set
        self._hooked: set[CpuNode] = set()  # metered or watched nodes
        self._plain = self._is_plain(root)  # no caps/scales/floors on internal nodes
        self._watched: dict[CpuNode, list] = {}  # node -> [fn, last alloc, last raw]

    # ------------------------------------------------------------------ time
    def next_time(self) -> float | None:
        """Time of the next internal event, or None."""
        return self._heap[0][0] if self._heap else None

    def advance(self, t_end: float) -> None:
        """Process every internal event with time ``<= t_end``; then set the clock."""
        heap = self._heap
        pop = heapq.heappop
        push = heapq.heappush
        seq_of = self._seq
        root = self.root
        complete = self._complete
        n_events = 0
        while heap and heap[0][0] <= t_end:
            t, kind, seq, obj = pop(heap)
            if kind == FINISH:
                if obj.version != seq:  # type: ignore[attr-defined]
                    self._stale -= 1
                    continue  # stale: the job's rate changed since this was pushed
                obj.version = -1  # type: ignore[attr-defined]  # its entry is consumed
            dt = t - self.now
            if dt > 0:
                self.used_core_s += root.alloc * dt
                self.delivered_core_s += self._job_rate * dt
                self.now = t
            n_events += 1
            if kind == FINISH:
                complete(obj)
            else:
                nxt = obj.fire(self, t)  # type: ignore[attr-defined]
                if nxt is not None:
                    push(heap, (nxt, FEED, next(seq_of), obj))
        self.events += n_events
        if self.now < t_end < float("inf"):
            self._tick(t_end)

    def _tick(self, t: float) -> None:
        dt = t - self.now
        if dt > 0:
            self.used_core_s += self.root.alloc * dt
            self.delivered_core_s += self._job_rate * dt
            self.now = t

    def add_feed(self, feed: Feed, t_first: float) -> None:
        """Register a feed whose first change is due at ``t_first``."""
        heapq.heappush(self._heap, (t_first, FEED, next(self._seq), feed))

    def take_feeds(self, nodes: set) -> list[tuple[float, Feed]]:
        """Drop every pending entry about ``nodes``, a subtree just detached: the
        completions of its jobs (stale since) and the feeds that change its nodes (a
        feed's node is its ``workload``, or the feed itself for a demand workload).
        Return those feeds with their due times, in order, for another host's
        scheduler."""
        taken, kept = [], []
        for entry in self._heap:
            obj = entry[3]
            if entry[1] == FINISH:
                if obj in nodes:
                    self._stale -= obj.version != entry[2]  # type: ignore[attr-defined]
                    continue
            elif getattr(obj, "workload", obj) in nodes:
                taken.append(entry)
                continue
            kept.append(entry)
        if len(kept) < len(self._heap):
            heapq.heapify(kept)
            self._heap[:] = kept
        return [(t, feed) for t, _, _, feed in sorted(taken)]  # type: ignore[misc]

    # ------------------------------------------------------------------ jobs
    def submit(self, job, parent: CpuNode) -> None:
        """Start ``job`` (with ``max_cores``) under ``parent`` at ``now``: it joins the
        pool of ``parent``'s jobs of its ``max_cores`` (made on first use)."""
        now = self.now
        if job.arrival is None:
            job.arrival = now
        job.rem = job.work_core_s
        if job.work_core_s <= 0:
            job.start = job.finish = now
            self.jobs_done += 1
            if self.on_job_done is not None:
                self.on_job_done(job)
            return
        cores = job.max_cores
        for pool in parent.children:
            if pool.is_pool and pool.max_cores == cores:
                break
        else:
            pool = JobPool(cores)
            parent.add(pool)
        pool.settle(now)
        if pool.version >= 0 and pool.vt + job.rem < pool.heap[0][0]:
            self._supersede(pool)  # it finishes before the job the pending completion is for
        pool.push(job, next(self._seq))
        self.set_demand(pool, pool.n * pool.max_cores)
        self._set_rate(pool, pool.alloc * self.speed)  # its jobs' rate moved with n
        if pool.jrate > 0:
            job.start = now
        else:
            pool.waiting.append(job)

    def _complete(self, pool) -> None:
        """The first job of ``pool`` is done now (its completion entry just consumed)."""
        pool.settle(self.now)
        job = pool.pop()
        job.finish = self.now
        self.jobs_done += 1
        self.set_demand(pool, pool.n * pool.max_cores)
        self._set_rate(pool, pool.alloc * self.speed)
        if self.on_job_done is not None:
            self.on_job_done(job)

    def remaining(self, job) -> float:
        """Work left of ``job`` at ``now``, core-s."""
        pool = job.pool
        return job.rem if pool is None else pool.remaining(job, self.now)

    # ------------------------------------------------------------------ meters
    def meter(self, node: CpuNode) -> None:
        """Track ``node``'s CPU usage (∫ allocation dt) from now on; see :meth:`usage_core_s`.

        The integral is settled only when the node's own allocation changes, so
        between two such changes ``usage_core_s(t)`` is one linear formula in t.
        """
        if node not in self._metered:
            node.used_core_s = 0.0
            node.t_used = self.now
            node.a_used = node.alloc
            self._metered[node] = None
            self._hooked.add(node)

    def unmeter(self, node: CpuNode) -> None:
        """Stop tracking ``node``'s usage."""
        self._metered.pop(node, None)
        self._hooks_changed(node)

    def usage_core_s(self, node: CpuNode, t: float | None = None) -> float:
        """Host core-s a metered node has used since :meth:`meter`, at ``t`` (default
        ``now``; any time since its allocation last changed)."""
        return node.used_core_s + node.a_used * ((self.now if t is None else t) - node.t_used)

    def _after_change(self, moved: list | None = None) -> None:
        """Settle the meters whose node's allocation moved, then call the watchers
        whose node moved; ``moved``: the only nodes that can have (default: any)."""
        now = self.now
        metered = self._metered
        watched = self._watched
        for n in metered if moved is None else moved:
            if n in metered and n.alloc != n.a_used:
                n.used_core_s += n.a_used * (now - n.t_used)
                n.t_used = now
                n.a_used = n.alloc
        for node in list(watched) if moved is None else moved:
            entry = watched.get(node)
            if entry is not None and (node.alloc != entry[1] or node.raw != entry[2]):
                entry[1], entry[2] = node.alloc, node.raw
                entry[0]()

    # ------------------------------------------------------------------ watchers
    def watch(self, node: CpuNode, fn: Callable[[], None]) -> None:
        """Call ``fn()`` (inside the scheduler, at ``now``) whenever ``node``'s
        allocation or demand changes. ``fn`` may add feeds or read state; it must
        not change the tree. Used by cgroup quota controllers."""
        self._watched[node] = [fn, node.alloc, node.raw]
        self._hooked.add(node)

    def unwatch(self, node: CpuNode) -> None:
        """Stop calling ``node``'s watcher."""
        self._watched.pop(node, None)
        self._hooks_changed(node)

    def hooked(self, node: CpuNode) -> bool:
        """Whether ``node``'s usage is metered or watched (a cgroup quota's)."""
        return node in self._hooked

    def _hooks_changed(self, node: CpuNode) -> None:
        if node not in self._metered and node not in self._watched:
            self._hooked.discard(node)

    # ------------------------------------------------------------------ changes
    def set_demand(self, node: CpuNode, demand: float, weight: float | None = None) -> None:
        """A leaf now wants ``demand`` cores (and, for CFS, has a new ``weight``)."""
        if not demand >= 0:  # also rejects NaN
            raise ValueError(f"demand must be >= 0 cores, got {demand!r}")
        old_eff = node.eff
        raw_delta = demand - node.raw
        node.demand = node.raw = demand
        eff = node.eff = demand if demand < node.cap else node.cap
        delta = eff - old_eff
        if weight is None and not node.children and self._headroom_leaf(node, delta, raw_delta):
            return
        force = weight is not None and weight != node.weight
        if force:
            node.weight = weight
        self._propagate(node, delta, raw_delta, force)
        if self._metered or self._watched:
            self._after_change()

    def _headroom_leaf(self, leaf: CpuNode, delta: float, raw_delta: float) -> bool:
        """Fast path for a leaf's change absorbed by headroom: if no node above ``leaf``
        is constrained (children's demand over its cap) before or after, and the host
        is not saturated before or after, every node on the path simply gets its
        effective demand and nothing off the path moves. Apply it and return True,
        else change nothing and return False. This is most events on a host with
        spare cores, with or without caps."""
        root = self.root
        capacity = self.capacity
        if root.eff > capacity:
            return False
        plain = self._plain  # no caps or scales above: nothing to check
        path = []  # (ancestor, its new dsum, its new eff)
        d = delta
        n = leaf.parent
        top = leaf
        while n is not None:
            dsum = n.dsum + d if n.children else 0.0
            if plain:
                eff = dsum if dsum > 0.0 else 0.0
            else:
                scale = n.scale
                cap = n.cap
                want = scale * dsum
                if want > cap or scale * n.dsum > cap:
                    return False
                eff = want if want > 0.0 else 0.0
            path.append((n, dsum, eff))
            d = eff - n.eff
            top = n
            n = n.parent
        if top is not root:
            if not plain:
                return False  # not under this host yet: see _detached_change
        elif top.eff + d > capacity:
            return False
        old_used = root.alloc
        now = self.now
        # a subtree not hung under this host (not yet attached) gets nothing
        leaf.alloc = leaf.eff if top is root else 0.0
        if leaf.is_pool:
            leaf.settle(now)
            self._set_rate(leaf, leaf.alloc * self.speed)
        on_node = self.on_node
        hooked = self._hooked
        moved = None
        if on_node is None and not hooked:
            for n, dsum, eff in path:
                n.dsum = dsum
                n.eff = n.alloc = eff
                raw_delta *= n.scale
                n.raw += raw_delta
        else:
            # the host has room: each recorded node gets what it would on an idle host
            tables = self.recorded_tables
            moved = [leaf] if leaf in hooked else []
            leaf.free = leaf.alloc
            if leaf.table in tables:
                self._record(leaf)
            for n, dsum, eff in path:
                n.dsum = dsum
                n.eff = n.alloc = n.free = eff
                raw_delta *= n.scale
                raw = n.raw = n.raw + raw_delta
                if n.table in tables:
                    # CpuShare.of(raw, eff, eff) as a plain tuple, inlined on this hot path
                    over = raw - eff if raw > eff else 0.0
                    last = n.last
                    if last is None or raw != last[0] or eff != last[1] or over != last[2] \
                            or last[3] != 0.0:
                        n.last = (raw, eff, over, 0.0)
                        (n.rec or self._writer(n))((now, raw, eff, over, 0.0))
                if n in hooked:
                    moved.append(n)
        if self.on_host is not None and root.alloc != old_used:
            self.on_host((now, root.alloc, self.ram_used_mib))
        if moved:
            self._after_change(moved)
        return True

    def set_limits(self, node: CpuNode, cap: float | None = None,
                   weight: float | None = None) -> None:
        """Change a node's cap and/or weight (e.g. a cgroup edit or a quota period).

        A cap alone moves only the node's effective demand, so it is pushed up like
        a demand change and re-shares only what it affects; a new weight moves the
        node's siblings' shares, so the whole tree is re-shared.
        """
        if (cap is not None and not cap >= 0) or (weight is not None and not weight > 0):
            raise ValueError(f"{node.name}: need cap >= 0 cores and weight > 0, got "
                             f"cap={cap!r}, weight={weight!r}")
        if weight is not None and weight != node.weight:
            node.weight = weight
            if cap is not None:
                node.cap = cap
            self._reshare_all()
            return
        if cap is None or cap == node.cap:
            return
        old_cap, node.cap = node.cap, cap
        if cap != INF and not (node.is_job or node.is_leaf):
            self._plain = False
        old_eff = node.eff
        if node.children:
            want = node.scale * node.dsum
            was, now_c = want > old_cap, want > cap
            if now_c is not was:
                self.n_constrained += 1 if now_c else -1
            node.eff = cap if now_c else (want if want > 0.0 else 0.0)
        else:
            node.eff = node.demand if node.demand < cap else cap
        if node.eff != old_eff:
            self._propagate(node, node.eff - old_eff, 0.0, False)
        if self._metered or self._watched:
            self._after_change()

    def attach(self, node: CpuNode, parent: CpuNode) -> None:
        """Hang ``node`` (possibly with children) below ``parent`` at ``now``."""
        for pool in node.pools():
            pool.t0 = self.now  # it had no CPU while off a host
        parent.add(node)
        if self._refresh(node) == 0.0 and node.raw == 0.0 and not node.alloc:
            # nothing below wants CPU yet: no one else's share moves
            self._plain = self._plain and self._is_plain(node)
            if self.on_node is not None:
                self._store_free(node)  # 0 all through, as its allocation
                self._record_subtree(node)
            return
        self._reshare_all()

    def detach(self, node: CpuNode) -> list:
        """Remove ``node`` and its subtree at ``now``; return its unfinished jobs. Each
        recorded series of the subtree ends with a row of zeros (it wants and gets
        nothing here from now on); hung on a host again, its rows start a new series."""
        stack = [node]
        while stack:
            n = stack.pop()
            if not n.is_job:
                if n.rec is not None and n.last is not None and any(n.last):
                    n.rec((self.now, 0.0, 0.0, 0.0, 0.0))
                n.rec = n.last = None
                stack.extend(n.children)
        pools = node.pools()
        jobs = [j for pool in pools for j in pool.jobs()]
        if not jobs and node.raw == 0.0 and node.eff == 0.0 and not node.alloc:
            # nothing below wants CPU: no one else's share moves
            node.parent.remove(node)
            if not self._plain:
                self._plain = self._is_plain(self.root)
            return jobs
        self._settle(pools)
        for pool in pools:
            self._set_rate(pool, 0.0)
        node.parent.remove(node)
        self._reshare_all()
        return jobs

    def _reshare_all(self) -> None:
        old_used = self.root.alloc
        self._refresh(self.root)
        self._reallocate(self.root, None, None)
        self._host_changed(old_used)
        if self._metered or self._watched:
            self._after_change()

    # ------------------------------------------------------------------ core
    def _propagate(self, node: CpuNode, delta: float, raw_delta: float, force: bool) -> None:
        """Push a change of ``node``'s effective demand up; re-share what it affects."""
        capacity = self.capacity
        root = self.root
        top = node
        while top.parent is not None:
            top = top.parent
        if top is not root:  # not under this host yet: bookkeeping only, no CPU
            self._detached_change(node, delta, raw_delta)
            return
        old_used = root.alloc
        sat_before = root.eff > capacity
        top = stop = None
        path = [node]
        n = node.parent
        while n is not None:
            if raw_delta:
                raw_delta *= n.scale
                n.raw += raw_delta
            if stop is None:
                if delta:
                    path.append(n)
                    scale = n.scale
                    was = scale * n.dsum > n.cap
                    n.dsum = n.dsum + delta if n.children else 0.0
                    want = scale * n.dsum
                    now_c = want > n.cap
                    if now_c is not was:
                        self.n_constrained += 1 if now_c else -1
                    if was or now_c:
                        top = n
                    new_eff = n.cap if now_c else (want if want > 0.0 else 0.0)
                    delta = new_eff - n.eff
                    n.eff = new_eff
                    if not delta:
                        stop = n
                else:
                    stop = path[-1]
            elif not raw_delta:
                break
            n = n.parent
        if force and (self.n_constrained or sat_before or root.eff > capacity):
            self._reallocate(root, None, None)
        elif stop is not None and stop is not root:
            if stop.alloc == 0.0 and stop.eff == 0.0:
                # a held subtree (cap 0, e.g. a VM still booting): everything below
                # already has 0 and keeps it; O(1) however many jobs queue there
                self._record_path(node)
            else:
                self._reallocate(stop, stop.alloc, path, top, sat_before)
        elif sat_before or root.eff > capacity:
            self._reallocate(root, None, path, top, sat_before)
        else:
            apex = top if top is not None else node
            n = apex.parent
            while n is not None:
                n.alloc = n.free = n.eff
                n = n.parent
            self._reallocate(apex, apex.eff, path)
        if root.alloc != old_used and self.on_host is not None:
            self.on_host((self.now, root.alloc, self.ram_used_mib))

    def _detached_change(self, node: CpuNode, delta: float, raw_delta: float) -> None:
        """A change inside a subtree not attached to this host: keep sums, give no CPU."""
        n = node.parent
        while n is not None:
            n.dsum += delta
            n.eff = max(0.0, min(n.cap, n.scale * n.dsum))
            n.raw += raw_delta * n.scale
            n = n.parent
        for leaf in node.leaf_nodes():  # every leaf below gets nothing (a pool: nor its jobs)
            leaf.alloc = 0.0
            if leaf.is_pool:
                leaf.settle(self.now)
                self._set_rate(leaf, 0.0)

    def _refresh(self, node: CpuNode) -> float:
        """Recompute ``dsum``/``raw``/``eff`` exactly below ``node``; count constraints."""
        if node is self.root:
            self.n_constrained = 0
            self._plain = self._is_plain(node)
        if not node.children:
            node.eff = min(node.cap, node.demand)
            node.raw = node.demand
            return node.eff
        dsum = raw = 0.0
        for c in node.children:
            dsum += self._refresh(c)
            raw += c.raw
        node.dsum = dsum
        node.raw = node.scale * raw
        want = node.scale * dsum
        if want > node.cap:
            self.n_constrained += 1
            node.eff = node.cap
        else:
            node.eff = want
        return node.eff

    @staticmethod
    def _is_plain(root: CpuNode) -> bool:
        """True if no internal node has a cap, a reservation or a scale other than 1."""
        stack = [root]
        while stack:
            n = stack.pop()
            if n.is_job or n.is_leaf:
                continue
            if n.cap != INF or n.floor or n.scale != 1.0:
                return False
            stack.extend(n.children)
        return True

    def _reallocate(self, apex: CpuNode, amount: float | None, dirty: list | None,
                    top: CpuNode | None = None, sat_before: bool = False) -> None:
        """Re-share ``amount`` (None: the host's cores, from the root) below ``apex``.

        ``dirty``: the nodes whose effective demand changed, the changed node first,
        up to ``apex``; without it the whole subtree is re-shared and recorded, else
        only what moved. ``top``: the highest node of ``dirty`` constrained (children's
        demand over its cap) before or after the change; ``sat_before``: the host was
        saturated before it. While recording, every node's ``free`` is kept at what it
        would get on an idle host (on a host with room: its allocation), and recorded
        nodes are recorded when their row moves.
        """
        speed = self.speed
        recording = self.on_node is not None
        if amount is None:
            root = self.root
            amount = min(self.capacity, root.eff)
            if recording and dirty is None and root.eff > self.capacity:
                distribute(root, root.eff)  # what each node would get on an idle host
                self._store_free(root)
        elif not apex.children:  # a single leaf: the common case on a host with room
            apex.alloc = amount
            if apex.is_pool:
                apex.settle(self.now)
                self._set_rate(apex, amount * speed)
            if recording:
                self._record_path(apex)
            return
        if dirty is None:
            pools = apex.pools()
            self._settle(pools)
            distribute(apex, amount)
            if recording:
                if not self.root.eff > self.capacity:
                    self._store_free(apex)
                self._record_subtree(apex)
            for pool in pools:
                self._set_rate(pool, pool.alloc * speed)
            return
        changed: list = []
        inner: list | None = [] if recording else None
        redistribute(apex, amount, set(dirty), changed, inner)
        now = self.now
        for pool in changed:
            if pool.is_pool:
                pool.settle(now)
                self._set_rate(pool, pool.alloc * speed)
        if recording:
            tables = self.recorded_tables
            room = self.root.eff <= self.capacity
            idle = self._idle_shares(dirty, top) if sat_before or not room else ()
            for n in itertools.chain(changed, inner, idle):  # type: ignore[arg-type]
                if room:
                    n.free = n.alloc
                if n.table in tables:
                    self._record(n)
            self._record_path(dirty[0])

    def _idle_shares(self, path: list, top: CpuNode | None) -> list:
        """Bring ``free`` (what each node would get on an idle host: the tree shared
        from a root given its effective demand, docs/model.md §2.5) up to date on a
        saturated host, after a change that moved the effective demands along ``path``
        (the changed node first; ``top`` as in :meth:`_reallocate`). Return the nodes
        whose share moved.

        Above the path's end nothing moved. Below it, a node whose parent is
        unconstrained and gets its own demand gets its own demand; from the highest
        path node where that may fail (``top``), shares are split again wherever a
        parent's share or its children's demands moved.
        """
        end = path[-1]
        chain = []
        n = end
        while n is not None:
            chain.append(n)
            n = n.parent
        share = chain[-1].eff  # the root, on a host as large as what it wants
        for i in range(len(chain) - 1, 0, -1):
            p, c = chain[i], chain[i - 1]
            if share == p.eff and not p.scale * p.dsum > p.cap:
                share = c.eff
            else:
                share = child_shares(p, share)[p.children.index(c)]
        apex = top if top is not None else path[0]
        moved: list = []
        if apex is not end and share == end.eff:
            for n in path[path.index(apex) + 1:]:  # unconstrained, each gets its demand
                if n.free != n.eff:
                    n.free = n.eff
                    moved.append(n)
            share = apex.eff
        else:
            apex = end
        self._split_idle(apex, share, set(path), moved)
        return moved

    def _split_idle(self, node: CpuNode, share: float, dirty: set, moved: list) -> None:
        """Give ``node`` the idle-host share ``share`` and split it below where it or
        the children's demands (``dirty``) moved; append the nodes that moved."""
        if node.free != share:
            node.free = share
            moved.append(node)
        elif node not in dirty:
            return
        if node.children:
            for c, a in zip(node.children, child_shares(node, share), strict=True):
                self._split_idle(c, a, dirty, moved)

    def _host_changed(self, old_used: float) -> None:
        if self.root.alloc != old_used and self.on_host is not None:
            self.on_host((self.now, self.root.alloc, self.ram_used_mib))

    def _store_free(self, apex: CpuNode) -> None:
        if self.on_node is None:
            return
        stack = [apex]
        while stack:
            n = stack.pop()
            n.free = n.alloc
            stack.extend(n.children)

    def _settle(self, pools: list) -> None:
        now = self.now
        for pool in pools:
            pool.settle(now)

    def _set_rate(self, pool, rate: float) -> None:
        """``pool`` (its clock settled now) does ``rate`` core-s of work per s from now:
        its jobs' rate and its next completion follow."""
        n = pool.n
        jrate = rate / n if n else 0.0
        if rate != pool.rate:
            self._job_rate += rate - pool.rate
            pool.rate = rate
        if jrate == pool.jrate and (pool.version >= 0 or not jrate):
            return  # its pending completion (if any) holds: its jobs' rate did not move
        pool.jrate = jrate
        if pool.version >= 0:
            self._supersede(pool)
        if jrate > 0:
            now = self.now
            if pool.waiting:
                for job in pool.waiting:
                    job.start = now
                pool.waiting.clear()
            seq = next(self._seq)
            pool.version = seq
            finish = now + max(0.0, pool.heap[0][0] - pool.vt) / jrate
            heapq.heappush(self._heap, (finish, FINISH, seq, pool))

    def _supersede(self, pool) -> None:
        """``pool``'s pending completion no longer holds: leave it in the heap as stale."""
        pool.version = -1
        self._stale += 1
        if self._stale > COMPACT_MIN and 2 * self._stale > len(self._heap):
            self._compact()

    def _compact(self) -> None:
        """Drop the superseded completions from the heap, in place (``advance`` holds
        it). Entries are totally ordered by (time, kind, seq), so the order of events
        does not change."""
        heap = self._heap
        heap[:] = [e for e in heap if e[1] != FINISH or e[3].version == e[2]]  # type: ignore
        heapq.heapify(heap)
        self._stale = 0

    # ------------------------------------------------------------------ recording
    def _record_subtree(self, apex: CpuNode) -> None:
        if self.on_node is None:
            return
        tables = self.recorded_tables
        stack = [apex]
        while stack:
            n = stack.pop()
            if n.table in tables:
                self._record(n)
            if n.children and not n.is_job:
                stack.extend(n.children)
        self._record_path(apex.parent)

    def _record_path(self, node: CpuNode | None, stop: CpuNode | None = None) -> None:
        """Record ``node`` and its ancestors up to ``stop`` (those in a recorded table)."""
        if self.on_node is None:
            return
        tables = self.recorded_tables
        room = self.root.eff <= self.capacity
        while node is not None:
            if room:
                node.free = node.alloc
            if node.table in tables:
                self._record(node)
            if node is stop:
                return
            node = node.parent

    def _record(self, n: CpuNode) -> None:
        vals = CpuShare.of(n.raw, n.alloc, n.free)
        if vals != n.last:
            n.last = vals
            (n.rec or self._writer(n))((self.now, *vals))

    def _writer(self, n: CpuNode):
        n.rec = self.on_node(n)  # type: ignore[misc]
        return n.rec
