"""Scenario files: TOML → validated :class:`ScenarioConfig`.

A scenario file describes one run: ``[run]`` (duration, seed, tables to record),
``[[fleet.hosts]]`` (host types and counts), ``[hosting]`` (mode and its
parameters), ``[placement]``, ``[images]`` (image sizes and where hosts get them),
``[[apps]]`` with their ``[[apps.workloads]]``, and ``[[rollouts]]`` (new versions
of apps, as events of the run).
Every model forbids unknown keys and is strict about types (TOML already has
them: ``"10"`` is not a number). Problems become :class:`~fleet_sim.errors.ConfigError`
messages naming the file, the key path and what is allowed, all at once:

    experiments/demo.toml: apps[2].workloads[0].rate_per_s: must be > 0 (allowed: a number > 0)

Key paths for ``--set`` and ``--param`` live in :mod:`fleet_sim.scenarios.keypaths`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from fleet_sim.errors import ConfigError, ConfigErrors
from fleet_sim.hosting import defaults
from fleet_sim.hosting.baremetal import BareMetalParams
from fleet_sim.hosting.containers import ContainerParams
from fleet_sim.hosting.hypervisor import VmParams
from fleet_sim.model import distributions as dist
from fleet_sim.model.service import ROUTINGS
from fleet_sim.policies.registry import PLACEMENT_POLICIES, ROLLOUT_STRATEGIES, rollout_strategy
from fleet_sim.scenarios.keypaths import apply_overrides, as_json, display_path, parse_path

RECORDABLE = ("hosts", "workloads", "instances", "jobs", "events", "links")
"""Tables a run can record (``run.record``)."""
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
_NAME_ALLOWED = "a name of letters, digits, '-' and '_', starting with a letter"


def _problem(problem: str, allowed: str) -> PydanticCustomError:
    """A validation error carrying the problem and what is allowed."""
    return PydanticCustomError("fleet_sim", "{problem}", {"problem": problem, "allowed": allowed})


class Strict(BaseModel):
    """Base of every config model: unknown keys and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Name = Annotated[str, Field(pattern=NAME_PATTERN)]


# ---------------------------------------------------------------- distributions
_UNIT = "in the unit of the key it sets"


class DeterministicConfig(Strict):
    """Always ``value``."""

    dist: Literal["deterministic"] = Field(description="the distribution")
    value: float = Field(ge=0, description=f"the value, {_UNIT}")


class ExponentialConfig(Strict):
    """Exponential with mean ``mean``."""

    dist: Literal["exponential"] = Field(description="the distribution")
    mean: float = Field(gt=0, description=f"mean, {_UNIT}")


class LogNormalConfig(Strict):
    """Log-normal with mean ``mean`` and coefficient of variation ``cv``."""

    dist: Literal["lognormal"] = Field(description="the distribution")
    mean: float = Field(gt=0, description=f"mean, {_UNIT}")
    cv: float = Field(gt=0, description="coefficient of variation: standard deviation / mean")


class UniformConfig(Strict):
    """Uniform on [``low``, ``high``]."""

    dist: Literal["uniform"] = Field(description="the distribution")
    low: float = Field(ge=0, description=f"smallest value, {_UNIT}")
    high: float = Field(ge=0, description=f"largest value, {_UNIT}")

    @model_validator(mode="after")
    def _ordered(self) -> UniformConfig:
        if self.high < self.low:
            raise _problem(f"high ({self.high:g}) is below low ({self.low:g})", "low <= high")
        return self


def _number_is_deterministic(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "deterministic", "value": value}
    return value


DistributionConfig = Annotated[
    DeterministicConfig | ExponentialConfig | LogNormalConfig | UniformConfig,
    Field(discriminator="dist"), BeforeValidator(_number_is_deterministic)]
"""A number (always that value) or a table ``{dist = "exponential", mean = 30}``;
``dist`` is one of deterministic, exponential, lognormal, uniform."""

_DISTRIBUTIONS = (dist.Deterministic, dist.Exponential, dist.LogNormal, dist.Uniform)
DISTRIBUTION_CONFIGS = (DeterministicConfig, ExponentialConfig, LogNormalConfig, UniformConfig)
"""The config classes of distributions (for ``isinstance``)."""


def distribution_config(d: dist.Distribution) -> Any:
    """The config of a model distribution (the inverse of :func:`distribution`)."""
    if isinstance(d, dist.Exponential):
        return ExponentialConfig(dist="exponential", mean=d.mean_value)
    if isinstance(d, dist.LogNormal):
        return LogNormalConfig(dist="lognormal", mean=d.mean_value, cv=d.cv)
    if isinstance(d, dist.Uniform):
        return UniformConfig(dist="uniform", low=d.low, high=d.high)
    if isinstance(d, dist.Deterministic):
        return DeterministicConfig(dist="deterministic", value=d.value)
    raise TypeError(f"no config for distribution {d!r}")


def distribution(spec: Any) -> dist.Distribution:
    """The model distribution a config describes."""
    if isinstance(spec, ExponentialConfig):
        return dist.Exponential(spec.mean)
    if isinstance(spec, LogNormalConfig):
        return dist.LogNormal(spec.mean, spec.cv)
    if isinstance(spec, UniformConfig):
        return dist.Uniform(spec.low, spec.high)
    return dist.Deterministic(spec.value)


# ---------------------------------------------------------------- run and fleet
class RunConfig(Strict):
    """``[run]``: how long, which seed, what to record."""

    duration_s: float = Field(3600.0, gt=0, description="simulated time, s")
    seed: int = Field(0, ge=0, description="base seed of every random stream")
    warmup_s: float = Field(0.0, ge=0, description="start of the statistics window, s")
    record: list[Literal[RECORDABLE]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["hosts", "workloads", "jobs", "events"],
        description=f"tables to record, among {', '.join(RECORDABLE)}")


class PowerConfig(Strict):
    """Host power: linear ``idle_w``→``peak_w`` or an 11-point SPECpower ``table_w``."""

    idle_w: float | None = Field(None, ge=0, description="power at 0 % load, W")
    peak_w: float | None = Field(None, ge=0, description="power at 100 % load, W")
    table_w: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, min_length=11, max_length=11, description="W at 0 %, 10 %, …, 100 % load")

    @model_validator(mode="after")
    def _one_form(self) -> PowerConfig:
        linear = self.idle_w is not None or self.peak_w is not None
        if linear == (self.table_w is not None) or (linear and None in (self.idle_w,
                                                                          self.peak_w)):
            raise _problem("give either idle_w and peak_w, or table_w",
                           "{idle_w = 100, peak_w = 400} or {table_w = [11 values in W]}")
        if linear and self.peak_w < self.idle_w:  # type: ignore[operator]
            raise _problem(f"peak_w ({self.peak_w:g}) is below idle_w ({self.idle_w:g})",
                           "peak_w >= idle_w")
        return self


def _default_power() -> PowerConfig:
    return PowerConfig(idle_w=defaults.HOST_IDLE_W, peak_w=defaults.HOST_PEAK_W)


class HostGroupConfig(Strict):
    """``[[fleet.hosts]]``: ``count`` identical hosts of one ``type``."""

    type: Name = Field(description="host type; hosts are named <type><index>, e.g. std003")
    count: int = Field(gt=0, description="number of hosts")
    cores: float = Field(gt=0, description="physical cores per host")
    speed: float = Field(1.0, gt=0, description="per-core speed relative to nominal")
    ram_mib: float = Field(65_536.0, gt=0, description="RAM per host, MiB")
    power: PowerConfig = Field(default_factory=_default_power)
    monthly_cost_usd: float = Field(defaults.HOST_MONTHLY_COST_USD, ge=0,
                                    description="cost per host per 30-day month, $")
    nic_mb_s: float = Field(defaults.HOST_NIC_MB_S, gt=0,
                            description="NIC bandwidth per host, each direction, MB/s")

    @property
    def names(self) -> list[str]:
        """Its hosts' names: ``<type><index>``, e.g. std003."""
        return [f"{self.type}{i:03d}" for i in range(self.count)]


class FleetConfig(Strict):
    """``[fleet]``: the host groups."""

    hosts: list[HostGroupConfig] = Field(
        min_length=1, description="[[fleet.hosts]] groups: type, count, cores, …")


# ---------------------------------------------------------------- hosting and placement
def _default(cls: type, name: str) -> Any:
    """The default of field ``name`` of the hosting dataclass ``cls`` (the single source)."""
    spec = {f.name: f for f in dataclasses.fields(cls)}[name]
    if spec.default is not dataclasses.MISSING:
        value = spec.default
    else:
        value = spec.default_factory()  # type: ignore[misc]
    return distribution_config(value) if isinstance(value, _DISTRIBUTIONS) else value


def _field(cls: type, name: str, description: str = "", **constraints: Any) -> Any:
    return Field(default_factory=functools.partial(_default, cls, name),
                 description=description, **constraints)


_Ratio = Annotated[float, Field(gt=0)]
_Probability = Annotated[float, Field(ge=0, le=1)]
_NonNegative = Annotated[float, Field(ge=0)]
_HOST_OS_RAM = "RAM each host's own OS uses (kernel, daemons), MiB"


class _ModeConfig(Strict):
    """A hosting mode's keys: the fields of its hosting dataclass ``Params``, one to one
    (their defaults are that dataclass's)."""

    Params: ClassVar[type]

    def hosting_params(self) -> Any:
        """These keys as the mode's hosting dataclass, the one form its runtime takes."""
        kwargs = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, DISTRIBUTION_CONFIGS):
                value = distribution(value)
            elif isinstance(value, _ModeConfig):
                value = value.hosting_params()
            kwargs[name] = value
        return self.Params(**kwargs)


class BareMetalConfig(_ModeConfig):
    """``[hosting.baremetal]``: apps as processes of one shared OS per host."""

    Params = BareMetalParams

    cpu_ratio: _Ratio = _field(BareMetalParams, "cpu_ratio", "CPU requests may add up to "
                               "cores × cpu_ratio")
    conflict_policy: Literal["refuse", "fail-install"] = _field(
        BareMetalParams, "conflict_policy", "what a dependency version conflict does")
    install_s: DistributionConfig = _field(BareMetalParams, "install_s", "install time, s")
    install_step_failure_p: _Probability = _field(
        BareMetalParams, "install_step_failure_p",
        "probability that one install step (a dependency, or the app) fails")
    install_max_attempts: int = _field(BareMetalParams, "install_max_attempts",
                                       "install attempts before the app is given up "
                                       "(the first one included)", ge=1)
    restart_backoff_s: _NonNegative = _field(BareMetalParams, "restart_backoff_s",
                                             "systemd restart delay, s")
    host_os_ram_mib: _NonNegative = _field(BareMetalParams, "host_os_ram_mib", _HOST_OS_RAM)


class ContainerConfig(_ModeConfig):
    """A container runtime (cgroup v2), one container per app replica: on each host
    (``[hosting.container]``) or inside each VM (``[hosting.vm.guest_containers]``)."""

    Params = ContainerParams

    cpu_ratio: _Ratio = _field(ContainerParams, "cpu_ratio", "CPU requests may add up to "
                               "cores × cpu_ratio")
    cfs: Literal["period", "fluid"] = _field(
        ContainerParams, "cfs", "cpu.max enforced per CFS period, or as an average cap")
    cfs_period_s: _Ratio = _field(ContainerParams, "cfs_period_s",
                                  "CFS bandwidth period: cpu.max quota is per period, s")
    start_s: DistributionConfig = _field(ContainerParams, "start_s", "start time, s")
    restart_backoff_base_s: _NonNegative = _field(
        ContainerParams, "restart_backoff_base_s", "restart delay after a first kill, s; "
        "it doubles with each kill in a row (CrashLoopBackOff)")
    restart_backoff_max_s: _NonNegative = _field(ContainerParams, "restart_backoff_max_s",
                                                 "longest restart delay, s")
    restart_backoff_reset_s: _NonNegative = _field(
        ContainerParams, "restart_backoff_reset_s",
        "running this long without a kill resets the delay to the first one, s")
    ram_overhead_mib: _NonNegative = _field(ContainerParams, "ram_overhead_mib",
                                            "runtime RAM per container (containerd-shim), MiB")
    host_os_ram_mib: _NonNegative = _field(ContainerParams, "host_os_ram_mib", _HOST_OS_RAM)


class VMConfig(_ModeConfig):
    """``[hosting.vm]``: one VM per app replica under a hypervisor."""

    Params = VmParams

    hypervisor_type: Literal[1, 2] = _field(
        VmParams, "hypervisor_type", "1: on the hardware (KVM); 2: hosted on a host OS, "
        "which takes RAM and CPU itself, with a larger virt_overhead")
    cpu_ratio: _Ratio = _field(VmParams, "cpu_ratio", "vCPUs may add up to cores × cpu_ratio")
    virt_overhead: _NonNegative | None = _field(
        VmParams, "virt_overhead", "extra host core-s per guest core-s (none: by type)")
    boot_s: DistributionConfig = _field(VmParams, "boot_s", "boot time, s")
    guest_os_ram_mib: _NonNegative = _field(VmParams, "guest_os_ram_mib",
                                            "RAM the guest OS uses inside each VM, MiB")
    guest_os_cores: _NonNegative = _field(VmParams, "guest_os_cores",
                                          "background CPU of each guest OS, cores")
    vm_ram_overhead_mib: _NonNegative = _field(
        VmParams, "vm_ram_overhead_mib", "hypervisor RAM per VM (QEMU process, page "
        "tables), reserved on the host beside the VM's RAM, MiB")
    vcpus_from: Literal["request", "threads"] = _field(
        VmParams, "vcpus_from", "VM size from the app's cpu_request_cores or its threads")
    pin_vcpus: bool = _field(VmParams, "pin_vcpus", "vCPUs on dedicated cores")
    guest: Literal["process", "container"] = _field(VmParams, "guest", "what runs inside")
    guest_containers: ContainerConfig = Field(
        default_factory=ContainerConfig,
        description='the container runtime inside each VM when guest = "container" '
        "(its cpu_ratio and host_os_ram_mib are not used there)")
    restart_backoff_s: _NonNegative = _field(VmParams, "restart_backoff_s",
                                             "systemd restart delay of a guest process, s")
    host_os_ram_mib: _NonNegative = _field(VmParams, "host_os_ram_mib", _HOST_OS_RAM)


class HostingConfig(Strict):
    """``[hosting]``: the mode, and each mode's parameters (only the chosen one is used,
    so one file can be swept over ``hosting.mode``)."""

    mode: Literal["baremetal", "vm", "container"] = Field(
        "baremetal", description="apps as processes of one shared OS, one VM per app "
        "replica, or one container per app replica")
    baremetal: BareMetalConfig = Field(default_factory=BareMetalConfig)
    vm: VMConfig = Field(default_factory=VMConfig)
    container: ContainerConfig = Field(default_factory=ContainerConfig)

    def params(self) -> BareMetalParams | VmParams | ContainerParams:
        """The parameters of the chosen mode, as its hosting dataclass."""
        return getattr(self, self.mode).hosting_params()


class PlacementConfig(Strict):
    """``[placement]``: which host each app replica goes to."""

    policy: Literal[tuple(PLACEMENT_POLICIES)] = Field(  # type: ignore[valid-type]
        "first-fit", description="among the hosts a replica fits: the first in fleet "
        "order, the one left with the least free CPU + RAM share (packing), or the most "
        "(spreading)")


# ---------------------------------------------------------------- workloads and apps
_KIND = "the kind of workload (it chooses the keys below)"


class _Workload(Strict):
    name: Name | None = Field(None, description="workload name (default: its kind)")

    @property
    def label(self) -> str:
        """The workload's name within its app."""
        return self.name or self.kind  # type: ignore[attr-defined]


class ConstantWorkloadConfig(_Workload):
    """Always wants ``cores``."""

    kind: Literal["constant"] = Field(description=_KIND)
    cores: float = Field(ge=0, description="cores wanted, a number >= 0")


class SpikyWorkloadConfig(_Workload):
    """``baseline_cores`` plus Poisson spikes of ``height_cores`` lasting ``duration_s``."""

    kind: Literal["spiky"] = Field(description=_KIND)
    baseline_cores: float = Field(ge=0, description="cores wanted between spikes")
    rate_per_s: float = Field(gt=0, description="spikes per second, a number > 0")
    height_cores: float = Field(gt=0, description="cores a spike adds, a number > 0")
    duration_s: DistributionConfig = Field(description="how long a spike lasts, s: a number "
                                           'or {dist = "exponential", mean = 30}')


class DiurnalWorkloadConfig(_Workload):
    """A daily sine ``mean_cores ± amplitude_cores``, stepped every ``step_s``."""

    kind: Literal["diurnal"] = Field(description=_KIND)
    mean_cores: float = Field(ge=0, description="mean cores wanted over a day")
    amplitude_cores: float = Field(ge=0, description="swing around the mean, cores")
    period_s: float = Field(86_400.0, gt=0, description="length of one cycle, s")
    peak_s: float = Field(14 * 3600.0, ge=0, description="time of the peak within each "
                          "cycle, s")
    step_s: float = Field(300.0, gt=0, description="demand is held constant over steps "
                          "of this length, s")


class ReplayWorkloadConfig(_Workload):
    """A utilization trace × ``cores``: ``trace`` is a file (one % per line, relative to
    the scenario file), ``planetlab:<name>`` (bundled) or ``planetlab:*`` (replica i
    replays the i-th bundled PlanetLab trace)."""

    kind: Literal["replay"] = Field(description=_KIND)
    trace: str = Field(description="a file of one CPU % per line, planetlab:<name> or "
                       "planetlab:*")
    cores: float = Field(gt=0, description="cores at 100 % of the trace")
    interval_s: float = Field(300.0, gt=0, description="time between trace samples, s")
    loop: bool = Field(False, description="start the trace again at its end (else its "
                       "last value holds)")


class JobsWorkloadConfig(_Workload):
    """Poisson job arrivals at ``rate_per_s`` of ``work_core_s`` on ≤ ``max_cores``."""

    kind: Literal["jobs"] = Field(description=_KIND)
    rate_per_s: float = Field(gt=0, description="job arrivals per second, a number > 0")
    work_core_s: DistributionConfig = Field(description="work per job, core-s: a number or "
                                            '{dist = "exponential", mean = 0.05}')
    max_cores: float = Field(1.0, gt=0, description="most cores one job uses")
    start_s: float = Field(0.0, ge=0, description="first arrivals from, s")
    end_s: float | None = Field(None, gt=0, description="no arrivals after (default: never)")
    scope: Literal["replica", "service"] = Field(
        "replica", description="each replica gets its own stream at rate_per_s, or the app's "
        "replicas share one stream at rate_per_s behind its load balancer ([apps.service])")


WorkloadConfig = Annotated[
    ConstantWorkloadConfig | SpikyWorkloadConfig | DiurnalWorkloadConfig | ReplayWorkloadConfig
    | JobsWorkloadConfig, Field(discriminator="kind")]
"""``[[apps.workloads]]``: ``kind`` is one of constant, spiky, diurnal, replay, jobs."""


class ServiceConfig(Strict):
    """``[apps.service]``: the load balancer in front of an app's replicas, for its
    workloads with ``scope = "service"``."""

    routing: Literal[ROUTINGS] = Field(  # type: ignore[valid-type]
        "random", description="random (by weight), round-robin, least-outstanding (fewest "
        "requests in flight) or power-of-two (the less loaded of two drawn at random)")
    retry: bool = Field(False, description="send a request lost with its replica to another "
                        "one (else it fails)")
    weights: list[Annotated[float, Field(gt=0)]] | None = Field(
        None, description="random routing: one weight per replica (default: equal)")


class AppConfig(Strict):
    """``[[apps]]``: an application, its size under each mode, and its workloads.

    Its ``replicas`` are named ``<name>-0``, ``<name>-1``, … (just ``<name>`` for one)
    and placed one by one; each has its own random streams. ``replicas = 0`` keeps
    the app in the file but deploys none of it (e.g. a victim without its neighbours:
    ``--set apps.batch.replicas=0``).
    """

    name: Name = Field(description=_NAME_ALLOWED)
    replicas: int = Field(1, ge=0, description="identical copies, placed one by one "
                          "(0: none deployed)")
    threads: int = Field(1, gt=0, description="threads: most cores it uses at once; "
                         "bounds its CFS weight on a shared OS")
    cpu_request_cores: float = Field(1.0, ge=0, description="CPU placement commits for it")
    ram_mib: float = Field(512.0, gt=0, description="RAM it uses (and placement reserves), MiB")
    ram_growth_mib_s: float = Field(0.0, ge=0, description="memory leak, MiB/s from each start")
    dependencies: dict[str, str] = Field(default_factory=dict,
                                         description="package → version it needs on a shared OS")
    vcpus: int | None = Field(None, gt=0, description="VM size (default: hosting.vm.vcpus_from)")
    cpu_weight: float = Field(defaults.CPU_WEIGHT_DEFAULT, ge=1, le=10_000,
                              description="container cpu.weight")
    cpu_max: float | None = Field(None, gt=0, description="container cpu.max, cores")
    cpuset_cores: int | None = Field(None, gt=0, description="container exclusive cores")
    memory_max_mib: float | None = Field(None, gt=0, description="container memory.max, MiB")
    app_layer_mb: float | None = Field(None, gt=0, description="its own container layer "
                                       "(default: images.app_layer_mb), MB")
    vm_image_mb: float | None = Field(None, gt=0, description="its VM image (default: "
                                      "images.vm_image_mb), MB")
    workloads: list[WorkloadConfig] = Field(default_factory=list)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    @property
    def instances(self) -> list[str]:
        """Names of the replicas."""
        if self.replicas == 1:
            return [self.name]
        return [f"{self.name}-{r}" for r in range(self.replicas)]


class ImagesConfig(Strict):
    """``[images]``: what hosts pull before a container starts or a VM boots, and from
    where. Every container image is the shared base layers under its app's own layer;
    a VM image is one file. Bare metal installs packages (``hosting.baremetal.install_s``
    includes their download)."""

    distribution: Literal["central", "mirrors", "p2p"] = Field(
        "central", description="initial deployments pull from the registry, from a "
        "pull-through mirror in their rack (mirrors; needs rack_hosts), or from a swarm "
        "of peers (p2p)")
    base_layers_mb: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [defaults.CONTAINER_BASE_LAYER_MB],
        description="container base layers shared by every app, base first, MB")
    app_layer_mb: _Ratio = Field(defaults.CONTAINER_APP_LAYER_MB,
                                 description="each app's own container layer, MB")
    vm_image_mb: _Ratio = Field(defaults.VM_IMAGE_MB, description="each app's VM image, MB")
    registry_uplink_mb_s: _Ratio = Field(defaults.REGISTRY_UPLINK_MB_S,
                                         description="registry uplink, MB/s")
    rack_hosts: int | None = Field(None, gt=0, description="hosts per rack, in fleet order "
                                   "(none: every host on the core network)")
    rack_uplink_mb_s: _Ratio = Field(defaults.RACK_UPLINK_MB_S, description="each rack's "
                                     "uplink to the core (with rack_hosts), MB/s")
    cache_mb: _NonNegative = Field(defaults.LAYER_CACHE_MB,
                                   description="room for cached image layers on each host, MB")
    registry_egress_mb_s: _Ratio | None = Field(
        None, description="the registry's egress limit, MB/s (none: its uplink)")
    max_concurrent_downloads: int = Field(defaults.MAX_CONCURRENT_DOWNLOADS, gt=0,
                                          description="layers a host downloads at once")
    p2p_origins: int = Field(1, gt=0, description="p2p: registries seeding the swarm")
    piece_mb: _Ratio = Field(defaults.P2P_PIECE_MB, description="p2p: piece size, MB")
    upload_slots: int = Field(defaults.P2P_UPLOAD_SLOTS, gt=0,
                              description="p2p: downloaders a seed serves at once")
    p2p_upload_cap_mb_s: _Ratio | None = Field(
        None, description="p2p: each host's upload cap, MB/s (none: its NIC)")
    p2p_download_cap_mb_s: _Ratio | None = Field(
        None, description="p2p: each host's download cap, MB/s (none: its NIC)")
    unpack_mb_s_per_core: _Ratio | None = Field(
        defaults.LAYER_UNPACK_MB_S_PER_CORE, description="containers: layer decompression "
        "and unpacking, MB of layer per core-s (none: instant)")
    lazy: bool = Field(False, description="containers start once lazy_fraction of each "
                       "layer has arrived and fetch the rest in the background")
    lazy_fraction: _Probability = Field(defaults.LAZY_START_FRACTION,
                                        description="share of an image needed to start (lazy)")


class RolloutConfig(Strict):
    """``[[rollouts]]``: at ``at_s``, roll ``app`` (an ``[[apps]]`` name) out from v1 to
    v2: its replicas' instances are replaced, on the fleet, under ``hosting.mode``."""

    app: Name = Field(description="the app whose replicas are replaced")
    at_s: float = Field(ge=0, description="when the rollout begins, s")
    strategy: Literal[tuple(ROLLOUT_STRATEGIES)] = Field(  # type: ignore[valid-type]
        "rolling", description="how instances are replaced (parameters in strategy_params)")
    strategy_params: dict[str, Any] = Field(
        default_factory=dict, description='e.g. {max_surge = "25%", max_unavailable = 0}')
    changed: Literal["top-layer", "whole-image"] = Field(
        "top-layer", description="what v2 changes: its app layer only, or every layer "
        "(a VM image is always copied whole)")
    distribution: Literal["central", "mirrors", "p2p"] = Field(
        "central", description="hosts fetch v2 from the registry, from a pull-through "
        "mirror in their rack (mirrors; needs images.rack_hosts), or from peers that have "
        "its layers (p2p)")
    dependencies: dict[str, str] | None = Field(
        None, description="package → version v2 needs on a shared OS (default: the app's)")
    health_check_s: _NonNegative = Field(defaults.HEALTH_CHECK_S,
                                         description="health check of a new instance, s")
    health_failure_p: _Probability = Field(
        defaults.HEALTH_CHECK_FAILURE_P,
        description="probability that a new instance fails its health check")
    max_retries: int = Field(defaults.PROVISION_MAX_RETRIES, ge=0, description="attempts "
                             "after the first when an instance fails to come up")
    rollback_failure_fraction: float | None = Field(
        None, gt=0, le=1, description="roll back once this share of replicas failed "
        "(none: never)")


class HostFailureConfig(Strict):
    """``[failures.host_types.<type>]``: random failures of every host of a type."""

    mtbf_s: DistributionConfig = Field(description="time from the start, or a repair, to "
                                       'the next failure, s: a number or {dist = '
                                       '"exponential", mean = 86400}')
    mttr_s: DistributionConfig = Field(description="time a failed host takes to be "
                                       "repaired, s")


class ScheduledFailureConfig(Strict):
    """``[[failures.scheduled]]``: ``host`` fails at ``at_s``."""

    host: str = Field(description="host name, <type><index> (e.g. std003)")
    at_s: float = Field(ge=0, description="time of the failure, s")
    repair_s: float | None = Field(None, gt=0, description="repaired this long after the "
                                   "failure, s (default: never)")


class CompromiseConfig(Strict):
    """``[[failures.compromises]]``: replica ``app`` is compromised at ``at_s``."""

    app: str = Field(description="the compromised replica (<name> or <name>-<i>)")
    at_s: float = Field(ge=0, description="time of the compromise, s")
    sample: bool = Field(False, description="draw the escapes once (else record every "
                         "possible exposure with its probability)")


class FailuresConfig(Strict):
    """``[failures]``: hosts failing and being repaired, and compromises."""

    host_types: dict[str, HostFailureConfig] = Field(
        default_factory=dict, description="host type → its mtbf_s and mttr_s")
    scheduled: list[ScheduledFailureConfig] = Field(
        default_factory=list, description="[[failures.scheduled]] tables: host, at_s, "
        "repair_s")
    compromises: list[CompromiseConfig] = Field(
        default_factory=list, description="[[failures.compromises]] tables: app, at_s, sample")

    @property
    def any(self) -> bool:
        """Whether anything fails at all."""
        return bool(self.host_types or self.scheduled or self.compromises)


# ---------------------------------------------------------------- dynamic consolidation
_DETECTORS = ("thr", "iqr", "mad", "lr", "lrr")
_SELECTIONS = ("mmt", "mc", "mu", "rs")
CONSOLIDATION_POLICIES = ("npa", "dvfs",
                          *(f"{d}-{s}" for d in _DETECTORS for s in _SELECTIONS))
"""``consolidation.policy`` names: the two baselines and the 20 detector-selection pairs."""


def _day(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TracesConfig(Strict):
    """``[traces]``: one guest per PlanetLab trace of a bundled ``day`` (docs/model.md
    §12.1), of CloudSim's four VM types in contiguous blocks, its demand the trace's
    CPU % × its MIPS, changing every 300 s."""

    day: Annotated[str, BeforeValidator(_day)] = Field(
        description="bundled PlanetLab day, YYYYMMDD (e.g. 20110303)")
    vms: int | None = Field(None, gt=0, description="only the first this many traces "
                            "of the day, by name (default: all; a smaller study)")

    @field_validator("day")
    @classmethod
    def _bundled(cls, day: str) -> str:
        from fleet_sim.scenarios.traces import planetlab_days
        days = planetlab_days()
        if day not in days:
            raise _problem(f"no bundled PlanetLab day {day!r}", ", ".join(days))
        return day


class ConsolidationConfig(Strict):
    """``[consolidation]``: dynamic consolidation of the ``[traces]`` guests
    (docs/model.md §12) or of the ``[[apps]]``' own instances (§5.6): the policy, its
    round interval, host power states and how guests move."""

    policy: str = Field("thr-mmt", description="npa (no power management), dvfs (power "
                        "follows load, no moves) or <detector>-<selection>: detector "
                        "thr|iqr|mad|lr|lrr, selection mmt|mc|mu|rs (e.g. lr-mmt)")
    threshold: float | None = Field(None, gt=0, description="the detector's parameter: "
                                    "THR's utilization threshold, the others' safety "
                                    "parameter (default: 0.8, 1.5, 2.5, 1.2, 1.2)")
    interval_s: float = Field(300.0, gt=0, description="time between rounds, s")
    switch_on_s: float = Field(0.0, ge=0, description="time to switch a host on, s")
    switch_on_w: float = Field(0.0, ge=0, description="power while switching on, W")
    migration: Literal["cloudsim", "precopy"] | None = Field(
        None, description="live-migration model: RAM over half the NIC "
        "(CloudSim), or pre-copy rounds on the run's network then stop-and-copy "
        "(default: cloudsim for [traces] guests; an app's instance always pre-copies)")
    ram: Literal["reserved", "cloudsim"] = Field(
        "reserved", description="RAM a running guest holds on its host for the fit tests: "
        "all of it, or (CloudSim's examples) none after the initial placement")
    cpu_loss: float = Field(0.1, ge=0, lt=1, description="CPU share a VM loses on the "
                            "source while it migrates (fraction)")
    dirty_mb_s: float = Field(10.0, ge=0, description="pre-copy: rate a VM dirties "
                              "memory, MB/s")
    stop_mb: float = Field(50.0, ge=0, description="pre-copy: stop-and-copy once at "
                           "most this much is left, MB")
    max_rounds: int = Field(30, ge=1, description="pre-copy: most copy rounds")
    stop_s: float = Field(2.0, ge=0, description="containers: time to stop one, s")
    start_s: float = Field(1.0, ge=0, description="containers: time to start one, s")

    @field_validator("policy")
    @classmethod
    def _known(cls, policy: str) -> str:
        if policy not in CONSOLIDATION_POLICIES:
            raise _problem(f"unknown consolidation policy {policy!r}",
                           "npa, dvfs or <detector>-<selection> with detector "
                           f"{'|'.join(_DETECTORS)} and selection {'|'.join(_SELECTIONS)}")
        return policy


class ScenarioConfig(Strict):
    """A whole scenario file."""

    run: RunConfig = Field(default_factory=RunConfig)
    fleet: FleetConfig = Field(description="[[fleet.hosts]] tables: type, count, cores, …")
    hosting: HostingConfig = Field(default_factory=HostingConfig)
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    apps: list[AppConfig] = Field(default_factory=list)
    rollouts: list[RolloutConfig] = Field(default_factory=list)
    failures: FailuresConfig = Field(default_factory=FailuresConfig)
    traces: TracesConfig | None = Field(None, description="[traces]: one guest per "
                                        "PlanetLab trace of a day (instead of [[apps]])")
    consolidation: ConsolidationConfig | None = Field(
        None, description="[consolidation]: dynamic consolidation of the [traces] guests "
        "or of the [[apps]]' instances")


# ---------------------------------------------------------------- loading
def read_toml(path: str | Path) -> dict[str, Any]:
    """The raw contents of a TOML file; ConfigError if missing or malformed."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(file, "(file)", "file not found",
                          "a path to a .toml scenario file, or a name from `fleet-sim list`"
                          ) from None
    except IsADirectoryError:
        raise ConfigError(file, "(file)", "is a folder, not a file", "a .toml file") from None
    except tomllib.TOMLDecodeError as e:
        text = str(e)
        where = re.search(r"\(at line (\d+), column (\d+)\)", text)
        key = f"line {where[1]}, column {where[2]}" if where else "(syntax)"
        problem = re.sub(r"\s*\(at line .*\)$", "", text) or "syntax error"
        raise ConfigError(file, key, f"invalid TOML: {problem}",
                          "TOML 1.0 syntax (https://toml.io)") from None


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ScenarioConfig:
    """Read, override (``key.path → value``) and validate a scenario file."""
    data = read_toml(path)
    return validate(apply_overrides(data, overrides or {}, str(path)), str(path),
                    base_dir=Path(path).parent, overridden=overrides or {})


def validate(data: Mapping[str, Any], file: str = "<config>", base_dir: Path | None = None,
             overridden: Iterable[str] = ()) -> ScenarioConfig:
    """Validate raw config data; raise ConfigError (one problem) or ConfigErrors (several).

    ``file`` labels the messages; problems at ``overridden`` key paths say so;
    ``base_dir`` resolves trace paths (default: the working folder).
    """
    over = {display_path(parse_path(p, file)) for p in overridden}
    try:
        config = ScenarioConfig.model_validate(data)
    except ValidationError as e:
        errors = [_translate(err, file, over) for err in e.errors()]
        raise (errors[0] if len(errors) == 1 else ConfigErrors(errors)) from None
    errors = feasibility(config, file, base_dir or Path.cwd())
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    return config


def resolved(config: ScenarioConfig) -> dict[str, Any]:
    """The full config with every default filled in, as plain JSON-able data."""
    return config.model_dump(mode="json")


# ---------------------------------------------------------------- error messages
def _unwrap(tp: Any) -> tuple[Any, str | None]:
    """Strip Annotated/Optional; return the type and a union discriminator if any."""
    disc = None
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            for meta in tp.__metadata__:
                if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                    disc = meta.discriminator
            tp = tp.__origin__
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
            else:
                return tp, disc
        else:
            return tp, disc


def _walk(loc: tuple[Any, ...]) -> tuple[list[Any], Any]:
    """Follow a pydantic error location through the models.

    Returns the display path (union tags dropped) and the type annotation found at
    its end (still wrapped, so a tagged union keeps its discriminator).
    """
    tp: Any = ScenarioConfig
    path: list[Any] = []
    for item in loc:
        tp, disc = _unwrap(tp)
        if disc is not None:  # a tagged union: this loc item is the tag
            members = [m for m in typing.get_args(tp)
                       if item in typing.get_args(m.model_fields[disc].annotation)]
            tp = members[0] if members else None
            continue
        path.append(item)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(item))
            tp = None if field is None else (
                Annotated[field.annotation, field] if field.discriminator else field.annotation)
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            tp = None
    return path, tp


def _tags(loc: tuple[Any, ...]) -> str:
    """The tags the tagged union at ``loc`` accepts ("constant, spiky, …")."""
    tp, disc = _unwrap(_walk(loc)[1])
    if disc is None:
        return ""
    return ", ".join(str(a) for m in typing.get_args(tp)
                     for a in typing.get_args(m.model_fields[disc].annotation))


def _fields(tp: Any) -> str:
    tp = _unwrap(tp)[0]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return ", ".join(tp.model_fields)
    return ""


_TYPE_WORDS = {"int": "an integer", "float": "a number", "string": "a string",
               "bool": "true or false", "list": "an array", "dict": "a table",
               "model": "a table", "model_attributes": "a table"}


def _translate(err: Mapping[str, Any], file: str, overridden: set[str]) -> ConfigError:
    kind, ctx, loc = err["type"], err.get("ctx") or {}, tuple(err["loc"])
    given = as_json(err.get("input"))
    if kind == "extra_forbidden":
        parent_path, parent = _walk(loc[:-1])
        path = display_path([*parent_path, loc[-1]])
        problem, allowed = "unknown key", _fields(parent) or None
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = ctx["discriminator"].strip("'")
        path = f"{display_path(_walk(loc)[0])}.{tag}"
        problem = (f"unknown {tag} {as_json(ctx['tag'])}" if kind == "union_tag_invalid"
                   else "missing required key")
        allowed = _tags(loc)
    elif kind == "missing":
        parent_path, parent = _walk(loc[:-1])
        path = display_path([*parent_path, loc[-1]])
        parent = _unwrap(parent)[0]
        field = parent.model_fields.get(str(loc[-1])) if _fields(parent) else None
        problem, allowed = "missing required key", field and field.description
    else:
        display, here = _walk(loc)
        path = display_path(display) or "(top level)"
        problem, allowed = _problem_text(kind, ctx, given, here, err["msg"])
    label = file
    if any(path == o or path.startswith((o + ".", o + "[")) for o in overridden):
        label = f"{file} (--set)"
    return ConfigError(label, path, problem, allowed)


def _problem_text(kind: str, ctx: Mapping[str, Any], given: str, here: Any,
                  msg: str) -> tuple[str, str | None]:
    bounds = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
              "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}
    if kind in bounds:
        op, key = bounds[kind]
        return f"must be {op} {ctx[key]:g}, got {given}", f"a number {op} {ctx[key]:g}"
    if kind == "literal_error":
        return f"{given} is not allowed", str(ctx.get("expected", "")).replace("'", '"')
    if kind == "string_pattern_mismatch":
        return f"{given} is not a valid name", _NAME_ALLOWED
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        return f"has {ctx.get('actual_length')} entries", (
            f"at least {n}" if kind == "too_short" else f"at most {n}")
    if kind == "fleet_sim":
        return ctx["problem"], ctx["allowed"]
    for prefix, words in _TYPE_WORDS.items():
        if kind.startswith(prefix + "_"):
            extra = _fields(here)
            return f"expected {words}, got {given}", (
                f"a table with keys {extra}" if extra else words)
    return msg, None


# ---------------------------------------------------------------- cross-field checks
def feasibility(config: ScenarioConfig, file: str, base_dir: Path) -> list[ConfigError]:
    """Combinations that validate key by key but cannot run (each as a ConfigError).

    Whether each app fits some host under the chosen mode is checked by
    :func:`fleet_sim.scenarios.build.fit_errors`, with the hosting code's own sizing.
    """
    errors: list[ConfigError] = []

    def bad(path: str, problem: str, allowed: str) -> None:
        errors.append(ConfigError(file, path, problem, allowed))

    run = config.run
    if run.warmup_s >= run.duration_s:
        bad("run.warmup_s", f"{run.warmup_s:g} s does not end before duration_s "
            f"({run.duration_s:g} s)", "0 <= warmup_s < duration_s")
    _unique(bad, "fleet.hosts", [h.type for h in config.fleet.hosts], "type")
    _unique(bad, "apps", [a.name for a in config.apps], "name")
    taken: dict[str, int] = {}
    for i, app in enumerate(config.apps):
        where = f"apps[{i}]"
        _unique(bad, f"{where}.workloads", [w.label for w in app.workloads], "name")
        for inst in app.instances:
            if taken.setdefault(inst, i) != i:
                bad(f"{where}.name", f"replica {as_json(inst)} clashes with a replica of "
                    f"apps[{taken[inst]}]", "names whose replicas <name>-<i> do not collide")
        for j, wl in enumerate(app.workloads):
            _check_workload(bad, f"{where}.workloads[{j}]", wl, base_dir)
        weights = app.service.weights
        if weights is not None and len(weights) != app.replicas:
            bad(f"{where}.service.weights", f"{len(weights)} weights for {app.replicas} "
                "replicas", "one weight > 0 per replica")
        elif weights is not None and app.service.routing != "random":
            bad(f"{where}.service.weights", f"weights do nothing with routing "
                f"{as_json(app.service.routing)}", 'weights with routing = "random" only')
    _check_images(bad, config)
    for i, rollout in enumerate(config.rollouts):
        _check_rollout(bad, config, i, rollout)
    _check_failures(bad, config, taken)
    _check_traces(bad, config)
    return errors


def _check_traces(bad: Any, config: ScenarioConfig) -> None:
    """``[traces]`` makes the guests: no ``[[apps]]`` beside it; ``[consolidation]``
    moves the ``[traces]`` guests or the ``[[apps]]``' own instances (then only the
    keys that apply to instances, see :data:`TRACES_ONLY`)."""
    if config.traces is not None and config.apps:
        bad("apps", f"{len(config.apps)} [[apps]] beside [traces], which makes the guests",
            "either [traces] (with [consolidation]) or [[apps]]")
    c = config.consolidation
    if c is None or config.traces is not None:
        return
    if not config.apps:
        bad("consolidation", "consolidation without guests to move",
            "a [traces] table (e.g. day = 20110303) or [[apps]] beside [consolidation]")
        return
    if c.policy == "npa":
        bad("consolidation.policy", '"npa" (hosts at peak power whatever their load) is '
            "the [traces] study's baseline; an apps run's hosts draw what their load needs",
            'dvfs (no moves) or <detector>-<selection> (e.g. "thr-mmt")')
    defaults = ConsolidationConfig()
    for key, why in TRACES_ONLY.items():
        if getattr(c, key) != getattr(defaults, key) and (key, getattr(c, key)) != (
                "migration", "precopy"):
            bad(f"consolidation.{key}", f"applies to [traces] guests only: {why}",
                "policy, threshold, interval_s, switch_on_s, switch_on_w, cpu_loss, "
                "dirty_mb_s, stop_mb, max_rounds")
    if config.failures.any:
        bad("failures", "failures beside the consolidation of an apps run (the failures "
            "and repairs of a host that is switched off are not modelled)",
            "either [failures] or [consolidation] in an apps run")


#: ``[consolidation]`` keys that apply to ``[traces]`` guests only: why not to instances
TRACES_ONLY = {
    "migration": 'an instance VM always migrates by pre-copy over the run\'s network '
                 '(migration = "precopy")',
    "ram": "an instance holds the RAM its hosting mode gives it",
    "stop_s": "a container instance stops as [hosting.container] says",
    "start_s": "a container instance starts as [hosting.container] says",
}


def _check_images(bad: Any, config: ScenarioConfig) -> None:
    """Each app's image must fit a host's layer cache (containers pull, VMs copy)."""
    images, mode = config.images, config.hosting.mode
    if images.distribution == "mirrors" and images.rack_hosts is None:
        bad("images.distribution", "mirrors puts a pull-through mirror in each rack",
            "images.rack_hosts set (hosts per rack) with distribution = \"mirrors\"")
    if mode == "baremetal":
        return
    for i, app in enumerate(config.apps):
        if mode == "vm":
            key, size = "vm_image_mb", app.vm_image_mb or images.vm_image_mb
        else:
            key = "app_layer_mb"
            size = sum(images.base_layers_mb) + (app.app_layer_mb or images.app_layer_mb)
        if size > images.cache_mb:
            bad(f"apps[{i}].{key}", f"its image of {size:g} MB does not fit a host's layer "
                f"cache of {images.cache_mb:g} MB (images.cache_mb)",
                "an image no larger than images.cache_mb")


def _check_failures(bad: Any, config: ScenarioConfig, replicas: Mapping[str, int]) -> None:
    failures = config.failures
    types = [g.type for g in config.fleet.hosts]
    for name, spec in failures.host_types.items():
        if name not in types:
            bad(f"failures.host_types.{name}", f"no host type {as_json(name)} in the fleet",
                "a type of [[fleet.hosts]]: " + ", ".join(types))
        if distribution(spec.mtbf_s).mean <= 0:
            bad(f"failures.host_types.{name}.mtbf_s", "a host would fail again and again "
                "at one instant", "a time between failures with a mean > 0 s")
    hosts = [name for g in config.fleet.hosts for name in g.names]
    for i, entry in enumerate(failures.scheduled):
        if entry.host not in hosts:
            bad(f"failures.scheduled[{i}].host", f"no host {as_json(entry.host)} in the fleet",
                f"a host name <type><index>: {hosts[0]} … {hosts[-1]}")
    for i, entry in enumerate(failures.compromises):
        if entry.app not in replicas:
            bad(f"failures.compromises[{i}].app", f"no replica {as_json(entry.app)}",
                "a replica name: " + (", ".join(list(replicas)[:5]) or "(no apps)"))


def _check_rollout(bad: Any, config: ScenarioConfig, i: int, rollout: RolloutConfig) -> None:
    where = f"rollouts[{i}]"
    apps = {a.name: a for a in config.apps}
    app = apps.get(rollout.app)
    if app is None or app.replicas == 0:
        bad(f"{where}.app", f"no deployed app {as_json(rollout.app)}",
            "the name of an [[apps]] entry with replicas >= 1: "
            + ", ".join(n for n, a in apps.items() if a.replicas) if apps else "an [[apps]] name")
        return
    if [r.app for r in config.rollouts].index(rollout.app) != i:
        bad(f"{where}.app", f"{as_json(rollout.app)} is rolled out twice",
            "one rollout per app (v1 to v2)")
    if rollout.at_s >= config.run.duration_s:
        bad(f"{where}.at_s", f"{rollout.at_s:g} s is not before run.duration_s "
            f"({config.run.duration_s:g} s)", "0 <= at_s < run.duration_s")
    if config.hosting.mode == "baremetal" and rollout.distribution != "central":
        bad(f"{where}.distribution", "bare metal installs packages from a central mirror",
            '"central" when hosting.mode = "baremetal"')
    if rollout.distribution == "mirrors" and config.images.rack_hosts is None:
        bad(f"{where}.distribution", "mirrors puts a pull-through mirror in each rack",
            "images.rack_hosts set (hosts per rack) with distribution = \"mirrors\"")
    try:
        strategy = rollout_strategy(rollout.strategy, **rollout.strategy_params)
    except (TypeError, ValueError) as e:
        bad(f"{where}.strategy_params", f"not valid for {rollout.strategy}: {e}",
            "the parameters of that strategy, e.g. rolling: max_surge, max_unavailable; "
            "batches: size; canary: fraction, then")
        return
    budgets = getattr(strategy, "budgets", None)
    in_place = config.hosting.mode == "baremetal"  # one version per shared OS at a time
    try:
        if budgets is not None:
            budgets(app.replicas, in_place=in_place)
        if in_place and rollout.strategy == "blue-green":
            raise ValueError("blue-green needs a parallel fleet")
    except ValueError as e:
        bad(f"{where}.strategy_params" if budgets is not None else f"{where}.strategy",
            f"impossible under hosting.mode = {as_json(config.hosting.mode)}: {e}",
            "max_unavailable >= 1 (or a percentage) for an in-place bare-metal rollout; "
            "no blue-green in place")


def _unique(bad: Any, path: str, names: list[str], key: str) -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            bad(f"{path}[{i}].{key}", f"duplicate {key} {as_json(name)}", "unique names")


def _check_workload(bad: Any, where: str, wl: Any, base_dir: Path) -> None:
    if isinstance(wl, JobsWorkloadConfig) and wl.end_s is not None and wl.end_s <= wl.start_s:
        bad(f"{where}.end_s", f"end_s ({wl.end_s:g}) is not after start_s ({wl.start_s:g})",
            "end_s > start_s")
    if isinstance(wl, ReplayWorkloadConfig):
        from fleet_sim.scenarios.traces import bundled_planetlab

        if wl.trace.startswith("planetlab:"):
            name = wl.trace.split(":", 1)[1]
            names = [p.name for p in bundled_planetlab()]
            if name != "*" and name not in names:
                bad(f"{where}.trace", f"no bundled PlanetLab trace {as_json(name)}",
                    "planetlab:* or planetlab:<one of " + ", ".join(names[:3]) + ", …>")
        elif not (base_dir / wl.trace).is_file():
            bad(f"{where}.trace", f"trace file {as_json(wl.trace)} not found in {base_dir}",
                "a file of one CPU percent per line (relative to the scenario file), "
                "or planetlab:<name>")
        else:
            from fleet_sim.errors import TraceError
            from fleet_sim.scenarios.traces import read_planetlab

            try:
                read_planetlab(base_dir / wl.trace)
            except TraceError as e:
                bad(f"{where}.trace", str(e), "one integer CPU percent 0..100 per line")


# ---------------------------------------------------------------- scenario files
def question(path: str | Path) -> str:
    """The question a scenario file answers: its first comment line."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.strip()
            if text.startswith("#"):
                return text.lstrip("#").strip()
            if text:
                break
    return ""
