"""Provisioning: how each hosting mode brings one instance of a version up (docs/model.md §5).

Roles: a *recipe* does the mode-specific part in two steps, ``prepare`` (get
the version's bits onto the host) and ``start``:

- :class:`BareMetalInstall` runs install steps on the host's shared OS, by hand
  or by a configuration-management script, with a per-step failure
  probability and dependency conflicts with the other apps on that OS;
- :class:`VMProvision` copies the VM image (one file) and boots the guest;
- :class:`ContainerProvision` pulls the missing layers and starts the container.

:class:`Provisioning` wraps a recipe with what every mode shares: a
:class:`HealthCheck`, and retries of failed attempts. It implements
``model.rollout.Provisioner``. Durations are passed in (their defaults live in
``hosting/defaults.py``); every random draw comes from the stream handed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import simpy
from simpy.events import ProcessGenerator

from fleet_sim.images.image import Image, Layer
from fleet_sim.images.network import Network
from fleet_sim.model.distributions import Distribution
from fleet_sim.model.protocols import Recorder
from fleet_sim.model.rollout import InstanceRecord


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed; a ``permanent`` failure is not worth retrying."""

    reason: str
    permanent: bool = False


class Recipe(Protocol):
    """The mode-specific part of provisioning; each step returns a Failure or None."""

    def prepare(self, instance: InstanceRecord) -> ProcessGenerator:
        """Get ``instance.version`` onto ``instance.host`` (transfer, install)."""
        ...

    def start(self, instance: InstanceRecord) -> ProcessGenerator:
        """Start the instance (boot a VM, start a container, restart a service)."""
        ...


class ImageSource(Protocol):
    """Where images come from: ``images.registry.Registry`` or ``images.swarm.Swarm``."""

    def pull(self, host: str, layers: Sequence[Layer]) -> ProcessGenerator:
        """Fetch the layers ``host`` lacks into its cache; returns the MB fetched."""
        ...


def _draw(duration: Distribution, rng: np.random.Generator) -> float:
    return float(duration.sample(rng, 1)[0])


class HealthCheck:
    """A check of ``duration_s`` s that fails with probability ``failure_p`` (stream ``rng``)."""

    def __init__(self, env: simpy.Environment, duration_s: float, failure_p: float,
                 rng: np.random.Generator):
        if duration_s < 0 or not 0 <= failure_p <= 1:
            raise ValueError("health check needs duration_s >= 0 and 0 <= failure_p <= 1")
        self.env = env
        self.duration_s = duration_s
        self.failure_p = failure_p
        self.rng = rng

    def check(self, instance: InstanceRecord) -> ProcessGenerator:
        """Probe the started instance; returns a Failure or None after ``duration_s``."""
        yield self.env.timeout(self.duration_s)
        return Failure("health check failed") if self.rng.random() < self.failure_p else None


class Provisioning:
    """A recipe, then a health check; a failed attempt is retried ``max_retries`` times.

    Each retry runs the whole recipe again; work already done is quick the
    second time (cached layers are not fetched again). A permanent failure
    (a dependency conflict) is not retried. Records an ``attempt_failed`` event
    per failed attempt.
    """

    def __init__(self, env: simpy.Environment, recipe: Recipe, health: HealthCheck, *,
                 max_retries: int, recorder: Recorder):
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        self.env = env
        self.recipe = recipe
        self.health = health
        self.max_retries = max_retries
        self.recorder = recorder

    def provision(self, instance: InstanceRecord) -> ProcessGenerator:
        """Prepare, start and check ``instance`` until it is healthy or out of attempts.

        In sim time: the recipe's steps and the health check, once per attempt.
        Returns True iff the instance passed its health check.
        """
        for _ in range(1 + self.max_retries):
            instance.attempts += 1
            failure = yield from self.recipe.prepare(instance)
            if failure is None:
                failure = yield from self.recipe.start(instance)
            if failure is None:
                instance.mark("started", self.env.now)
                failure = yield from self.health.check(instance)
            if failure is None:
                return True
            instance.failure = failure.reason
            self.recorder.event(self.env.now, "attempt_failed", instance.instance, failure.reason)
            if failure.permanent:
                break
        return False


class ImageProvision:
    """Fetch the version's image into the host's cache, then start it (``start_time`` s).

    ``images``: the image of each version; ``source``: the registry or P2P swarm
    (``transfer_end``: when the image can start — pulled and unpacked, or lazily).
    """

    def __init__(self, env: simpy.Environment, source: ImageSource, images: Mapping[str, Image],
                 start_time: Distribution, rng: np.random.Generator):
        self.env = env
        self.source = source
        self.images = images
        self.start_time = start_time
        self.rng = rng

    def prepare(self, instance: InstanceRecord) -> ProcessGenerator:
        """Pull what the host's cache lacks (nothing when all of it is cached)."""
        if math.isnan(instance.transfer_start):
            instance.mark("transfer_start", self.env.now)
        yield from self.source.pull(instance.host, self.images[instance.version].layers)
        instance.mark("transfer_end", self.env.now)
        return None

    def start(self, instance: InstanceRecord) -> ProcessGenerator:
        """Wait the start (or boot) time."""
        yield self.env.timeout(_draw(self.start_time, self.rng))
        return None


class VMProvision(ImageProvision):
    """Copy the VM image (one file) unless the host's image cache holds it, then boot
    the guest OS; ``start_time`` is the boot-time distribution."""


class ContainerProvision(ImageProvision):
    """Pull the image layers the host does not cache, then start the container;
    ``start_time`` is the container start-time distribution."""


@dataclass(frozen=True)
class InstallStep:
    """One step of a bare-metal install: optionally download ``download_mb`` MB from
    the package mirror, then work for ``duration_s`` s. ``requires``: package
    versions the step installs on the shared OS (package -> version)."""

    name: str
    duration_s: float
    download_mb: float = 0.0
    requires: Mapping[str, str] = field(default_factory=dict)


class BareMetalInstall:
    """Install a release on a host's shared OS, one step after another.

    By a configuration-management script or by hand, the recipe is the same; the
    numbers differ: step durations, ``step_failure_p``, and ``workers``, how many
    hosts are worked on at once (an operator team, or Ansible's forks; None:
    every host at once, as agent-based tools such as Puppet run). ``releases``:
    the steps that install each version. ``pins``: per host, package versions
    the other apps on its OS need. A step that requires another version of a
    pinned package fails at once and permanently (retrying meets the same
    conflict); any other step fails with ``step_failure_p`` after its duration.
    Downloads come from node ``mirror`` over the network. ``start`` restarts
    the app's service (``restart_time`` s). Random draws come from ``rng``.
    """

    def __init__(self, env: simpy.Environment, network: Network,
                 releases: Mapping[str, Sequence[InstallStep]], *, mirror: str,
                 pins: Mapping[str, Mapping[str, str]], step_failure_p: float,
                 restart_time: Distribution, rng: np.random.Generator,
                 workers: int | None):
        if not 0 <= step_failure_p <= 1:
            raise ValueError(f"step_failure_p must be in [0, 1], got {step_failure_p!r}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 or None, got {workers!r}")
        self.env = env
        self.network = network
        self.releases = releases
        self.mirror = mirror
        self.pins = pins
        self.step_failure_p = step_failure_p
        self.restart_time = restart_time
        self.rng = rng
        self._workers = None if workers is None else simpy.Resource(env, workers)

    def prepare(self, instance: InstanceRecord) -> ProcessGenerator:
        """Wait for a free worker, then run the release's steps in order."""
        if self._workers is None:
            return (yield from self._install(instance))
        with self._workers.request() as turn:
            yield turn
            return (yield from self._install(instance))

    def _install(self, instance: InstanceRecord) -> ProcessGenerator:
        pinned = self.pins.get(instance.host, {})
        for step in self.releases[instance.version]:
            for package, version in step.requires.items():
                held = pinned.get(package)
                if held is not None and held != version:
                    return Failure(f"{step.name}: dependency conflict: needs {package} "
                                   f"{version}, another app pins {package} {held}",
                                   permanent=True)
            if step.download_mb:
                if math.isnan(instance.transfer_start):
                    instance.mark("transfer_start", self.env.now)
                yield self.network.transfer(self.mirror, instance.host, step.download_mb)
                instance.mark("transfer_end", self.env.now)
            yield self.env.timeout(step.duration_s)
            if self.rng.random() < self.step_failure_p:
                return Failure(f"{step.name}: step failed")
        return None

    def start(self, instance: InstanceRecord) -> ProcessGenerator:
        """Restart the app's service."""
        yield self.env.timeout(_draw(self.restart_time, self.rng))
        return None
