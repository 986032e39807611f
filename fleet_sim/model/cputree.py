"""Nodes of a host's CPU tree (docs/model.md §2): structure only, no scheduling.

The tree is host → {processes, hypervisor → VMs → …, runtime → containers → …}.
Every node has a weight, an optional cap and reservation (cores) and a ``scale``
(host core-s consumed per core-s handed to its children: ``1 + virt_overhead``
for a VM). Leaves are demand workloads or jobs and carry a demand (cores).

Besides the allocator's fields, each node keeps running sums the scheduler
maintains incrementally: ``dsum`` (sum of children's effective demands) and
``raw`` (demand before any cap, in the node's own units).
"""

from __future__ import annotations

from typing import NamedTuple

from fleet_sim.numerics.fairshare import INF, FairNode

#: tables a node can be recorded in
WORKLOADS, INSTANCES = "workloads", "instances"


class CpuShare(NamedTuple):
    """A recorded node's row (cores, in its own units): what it wants, what it gets, and
    its unmet demand split by who is to blame (docs/model.md §2.5). ``throttled_cores``:
    above what it would get on an idle host (its own caps and quotas); ``contention_cores``:
    the rest of its unmet demand (neighbours).

    Field names are the columns of the ``workloads`` and ``instances`` tables."""

    demand_cores: float
    allocated_cores: float
    throttled_cores: float
    contention_cores: float

    @classmethod
    def of(cls, demand: float, allocated: float, idle_host: float) -> CpuShare:
        """The row of a node wanting ``demand`` that gets ``allocated`` and would get
        ``idle_host`` on an idle host."""
        return cls(demand, allocated, max(0.0, demand - idle_host),
                   max(0.0, idle_host - allocated))


class CpuNode(FairNode):
    """A named node of a CPU tree; ``table`` says where its allocation is recorded."""

    __slots__ = ("a_used", "dsum", "free", "instance", "last", "name", "raw", "rec", "t_used",
                 "table", "used_core_s")
    is_job = False
    is_leaf = False  # True for nodes that never get children (demand workloads, job pools)
    is_pool = False  # True for a pool of jobs (fleet_sim.model.jobs.JobPool)

    def __init__(self, name: str, weight: float = 1.0, cap: float = INF, floor: float = 0.0,
                 scale: float = 1.0, table: str | None = None, instance: str = ""):
        super().__init__(weight=weight, cap=cap, floor=floor, scale=scale)
        self.name = name
        self.table = table
        self.instance = instance
        self.raw = 0.0
        self.dsum = 0.0
        self.free = 0.0
        self.used_core_s = 0.0  # ∫ alloc dt up to t_used, kept only for metered nodes
        self.t_used = 0.0
        self.a_used = 0.0  # the allocation since t_used
        self.last: tuple[float, float, float, float] | None = None  # its last row (a CpuShare)
        self.rec = None  # the host's writer of this node's rows, once it has one

    def leaf_nodes(self) -> list[CpuNode]:
        """The nodes without children below (or at) this node (demand workloads, pools)."""
        out: list[CpuNode] = []
        stack: list[CpuNode] = [self]
        while stack:
            node = stack.pop()
            if node.children:
                stack.extend(node.children)  # type: ignore[arg-type]
            else:
                out.append(node)
        return out

    def leaves(self) -> list:
        """All leaves below (or at) this node, a pool of jobs standing for its jobs."""
        out: list = []
        for node in self.leaf_nodes():
            if node.is_pool:
                out.extend(node.jobs())  # type: ignore[attr-defined]
            else:
                out.append(node)
        return out

    def pools(self) -> list:
        """The pools of jobs below (or at) this node."""
        return [node for node in self.leaf_nodes() if node.is_pool]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, alloc={self.alloc:g}, eff={self.eff:g})"
