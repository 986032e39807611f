"""Fleet: the hosts of one run, looked up by name, advanced together at the end."""

from __future__ import annotations

import simpy

from fleet_sim.model.host import Host


class Fleet:
    """An ordered collection of hosts sharing one SimPy environment."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.hosts: list[Host] = []
        self.by_name: dict[str, Host] = {}

    def add(self, host: Host) -> Host:
        """Add ``host``; names must be unique."""
        if host.name in self.by_name:
            raise ValueError(f"duplicate host name {host.name!r}")
        self.hosts.append(host)
        self.by_name[host.name] = host
        return host

    def __getitem__(self, name: str) -> Host:
        return self.by_name[name]

    def __len__(self) -> int:
        return len(self.hosts)

    def finalize(self, t_end: float) -> None:
        """Advance every host to ``t_end`` (the end of the run)."""
        for h in self.hosts:
            h.finalize(t_end)

    def jobs_finished(self) -> int:
        """Number of jobs finished so far on all hosts."""
        return sum(h.cpu.jobs_done for h in self.hosts)
