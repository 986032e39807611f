"""Run one scenario, or sweep many, with provenance and resume.

A run goes through the phases load/validate → build → run → finalize → tables →
store and always ends with a manifest: a failing run records its exception
instead of tables, and a sweep carries on. Its id is a content hash of the
resolved config (which holds the seed), so a sweep that is started again skips
every run already stored and runs only what is missing.

A sweep is the cartesian product of its parameter axes (key path → values) ×
``replications``; replication ``r`` of every point uses the ``r``-th seed of
``rng.replication_seeds(base_seed, replications)`` (independent streams, and
paired across points: common random numbers).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import hashlib
import itertools
import json
import platform
import shutil
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from fleet_sim.errors import ConfigError, ConfigErrors
from fleet_sim.results import store
from fleet_sim.results.store import Results
from fleet_sim.rng import replication_seeds
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios import keypaths
from fleet_sim.scenarios.backends import Backend, make_backend
from fleet_sim.scenarios.build import build, fit_errors

EXPERIMENTS_DIR = Path(str(resources.files("fleet_sim.experiments")))
"""The shipped experiments: the repository's ``experiments/`` folder, installed as the
package ``fleet_sim.experiments`` (a folder in an editable install and in a wheel)."""

Source = str | Path | Mapping[str, Any] | cfg.ScenarioConfig
Overrides = Mapping[str, Any] | Iterable[str] | None


def version() -> str:
    """The installed fleet_sim version."""
    try:
        return metadata.version("fleet_sim")
    except metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- sources and overrides
def find_scenario(name: str | Path) -> Path:
    """A scenario file: ``name`` itself if it is a file, else the shipped experiment
    ``<name>.toml`` in :data:`EXPERIMENTS_DIR`."""
    path = Path(name)
    if path.is_file() or path.suffix:
        return path
    shipped = EXPERIMENTS_DIR / f"{name}.toml"
    return shipped if shipped.is_file() else path


def _as_overrides(items: Overrides) -> dict[str, Any]:
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    return dict(keypaths.parse_assignment(text) for text in items)


def _shorthands(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``duration_s=…`` → ``run.duration_s``; ``hosting__mode=…`` → ``hosting.mode``."""
    out = {}
    for key, value in kwargs.items():
        path = key.replace("__", ".")
        if "." not in path and path in cfg.RunConfig.model_fields:
            path = f"run.{path}"
        out[path] = value
    return out


@dataclass(frozen=True)
class Scenario:
    """Raw scenario data with where it came from (label for messages, folder for traces)."""

    data: dict[str, Any]
    label: str
    base_dir: Path

    @classmethod
    def of(cls, source: Source) -> Scenario:
        """Read ``source``: a path or experiment name, raw data, or a ScenarioConfig."""
        if isinstance(source, cfg.ScenarioConfig):
            return cls(cfg.resolved(source), "<config>", Path.cwd())
        if isinstance(source, Mapping):
            return cls(dict(source), "<config>", Path.cwd())
        path = find_scenario(source)
        return cls(cfg.read_toml(path), str(path), path.parent)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Scenario:
        """The same scenario with ``key.path → value`` applied."""
        data = keypaths.apply_overrides(self.data, overrides, self.label)
        return Scenario(data, self.label, self.base_dir)

    def validate(self, overridden: Iterable[str] = ()) -> cfg.ScenarioConfig:
        """The validated config: keys, types and combinations, and that every app fits
        some host under its mode (ConfigError/ConfigErrors otherwise)."""
        config = cfg.validate(self.data, self.label, self.base_dir, overridden)
        errors = fit_errors(config, self.label)
        if errors:
            raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
        return config


def prepare(source: Source, seed: int | None = None, overrides: Overrides = None,
            **shorthands: Any) -> tuple[Scenario, dict[str, Any]]:
    """The scenario with all overrides applied, and the overrides (for messages)."""
    scenario = Scenario.of(source)
    over = _as_overrides(overrides) | _shorthands(shorthands)
    if seed is not None:
        over["run.seed"] = seed
    return scenario.with_overrides(over), over


def validate(source: Source, *, seed: int | None = None, set: Overrides = None,
             **overrides: Any) -> cfg.ScenarioConfig:
    """Check a scenario without running it, as ``fleet-sim validate`` does.

    Keys, types, values and combinations, trace files, and a dry run of the placement
    of every replica (so a fleet too small for the apps is found here, not mid-run).

    Returns
    -------
    ScenarioConfig
        The validated config, defaults filled in.

    Raises
    ------
    ConfigError, ConfigErrors
        If anything is wrong; each names the file, the key path and what is allowed.
    """
    scenario, over = prepare(source, seed, set, **overrides)
    return scenario.validate(over)


# ---------------------------------------------------------------- one run
@dataclass(frozen=True)
class RunSpec:
    """One planned run: the resolved config (its ``run.seed`` is the run's seed) and
    where it sits in a sweep."""

    config: dict[str, Any]
    source: str
    base_dir: str
    replication: int = 0
    sweep_point: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    base_seed: int | None = None

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.config["run"]["seed"])

    @functools.cached_property
    def content_hash(self) -> str:
        """SHA-256 of the resolved config, the seed and the contents of the trace files
        it names (canonical JSON), hex: editing a trace in place makes a new run."""
        text = json.dumps({"config": self.config, "seed": self.seed,
                           "inputs": _input_digests(self.config, Path(self.base_dir))},
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def run_id(self) -> str:
        """The run's folder name: the first 16 hex digits of :attr:`content_hash`."""
        return self.content_hash[:16]


def _input_digests(config: Mapping[str, Any], base_dir: Path) -> dict[str, str]:
    """SHA-256 of each trace file a config replays (bundled traces are versioned code)."""
    out = {}
    for app in config.get("apps") or ():
        for wl in app.get("workloads") or ():
            trace = wl.get("trace")
            if wl.get("kind") == "replay" and trace and not trace.startswith("planetlab:"):
                path = base_dir / trace
                if path.is_file():
                    out[trace] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass(frozen=True)
class RunOutcome:
    """What a worker sends back: small, whatever the size of the tables."""

    run_id: str
    status: str
    wall_time_s: float
    error: str = ""


def simulate(spec: RunSpec, on_step: Callable[[float], None] | None = None,
             on_phase: Callable[[str], None] | None = None, spool_dir: Path | None = None
             ) -> tuple[dict[str, pd.DataFrame | Path], dict[str, Any], Exception | None]:
    """Run ``spec`` through every phase; return its tables, manifest and exception (if any).

    ``on_step(t)`` is called as simulated time advances, ``on_phase(name)`` when the
    run enters the phase ``"tables"`` (building the result tables). With ``spool_dir``
    the recorded tables are written there as Parquet as the run goes (and returned as
    paths), so memory does not grow with the run; without, they are DataFrames."""
    started = time.perf_counter()
    manifest: dict[str, Any] = {
        "run_id": spec.run_id, "content_hash": spec.content_hash, "status": store.OK,
        "seed": spec.seed, "replication": spec.replication, "sweep_point": spec.sweep_point,
        "base_seed": spec.base_seed, "params": spec.params, "source": spec.source,
        "fleet_sim_version": version(), "python": platform.python_version(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": spec.config,
    }
    tables: dict[str, pd.DataFrame | Path] = {}
    error: Exception | None = None
    try:
        config = cfg.validate(spec.config, spec.source, Path(spec.base_dir))
        sim = build(config, spec.seed, Path(spec.base_dir), spool_dir)
        sim.start()
        sim.run(on_step)
        sim.finalize()
        if on_phase is not None:
            on_phase("tables")
        tables = sim.tables()
    except Exception as e:  # recorded, never lost: the manifest says what went wrong
        error, tables = e, {}
        manifest["status"] = store.FAILED
        manifest["exception"] = {"type": type(e).__name__, "message": str(e),
                                 "traceback": traceback.format_exc()}
    manifest["wall_time_s"] = round(time.perf_counter() - started, 3)
    manifest["tables"] = {name: _rows(frame) for name, frame in tables.items()}
    return tables, manifest, error


def _rows(table: pd.DataFrame | Path) -> int:
    return pq.ParquetFile(table).metadata.num_rows if isinstance(table, Path) else len(table)


def simulate_and_store(spec: RunSpec, out_dir: str | Path,
                       on_step: Callable[[float], None] | None = None,
                       on_phase: Callable[[str], None] | None = None
                       ) -> tuple[Path, dict[str, Any], Exception | None]:
    """Simulate ``spec`` spooling its tables next to ``out_dir``, then store the run
    there; return its folder, manifest and exception (if any)."""
    spool = store.temporary_folder(out_dir, spec.run_id)
    try:
        tables, manifest, error = simulate(spec, on_step, on_phase, spool)
        if on_phase is not None:
            on_phase("store")
        manifest["path"] = str(store.write_run(out_dir, spec.run_id, tables, manifest))
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    return Path(manifest["path"]), manifest, error


def execute(spec: RunSpec, out_dir: str) -> RunOutcome:
    """Simulate ``spec`` and store it under ``out_dir`` (what a backend worker does)."""
    _, manifest, _ = simulate_and_store(spec, out_dir)
    exc = manifest.get("exception") or {}
    return RunOutcome(spec.run_id, manifest["status"], manifest["wall_time_s"],
                      f"{exc['type']}: {exc['message']}" if exc else "")


def _progress_bar(total: float, unit: str, desc: str, progress: bool | None):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, leave=False, dynamic_ncols=True,
                disable=None if progress is None else not progress)


def run(source: Source, *, seed: int | None = None, out: str | Path | None = None,
        set: Overrides = None, progress: bool | None = None, reraise: bool = True,
        **overrides: Any) -> Results:
    """Run one scenario and return its tables.

    Parameters
    ----------
    source : path, experiment name, dict or ScenarioConfig
        The scenario (``"demo"`` finds ``experiments/demo.toml``).
    seed : int, optional
        Overrides ``run.seed``.
    out : path, optional
        Store the run under ``out/<run_id>/`` (Parquet + manifest.json).
    set : mapping or list of "key.path=value", optional
        Overrides, as ``fleet-sim run --set``.
    progress : bool, optional
        Show a progress bar (default: only on a terminal).
    reraise : bool
        Raise the run's exception after recording it (default); if False, return
        Results whose manifest holds the exception.
    **overrides
        Shorthands: ``duration_s=600`` is ``run.duration_s``; ``hosting__mode="vm"``
        is ``hosting.mode``.

    Returns
    -------
    Results
        ``res.hosts``, ``res.workloads``, ``res.jobs``, ``res.summary``, … as DataFrames.

    Raises
    ------
    ConfigError, ConfigErrors
        If the scenario is invalid (before anything runs).
    """
    scenario, over = prepare(source, seed, set, **overrides)
    config = scenario.validate(over)
    spec = RunSpec(cfg.resolved(config), scenario.label, str(scenario.base_dir))
    name = scenario_name(scenario.label)
    total = config.run.duration_s
    phases = {"tables": "writing tables", "store": "storing"}
    with _progress_bar(total, "sim-s", name, progress) as bar:
        def step(t: float) -> None:
            bar.update(min(t, total) - bar.n)

        def phase(which: str) -> None:
            bar.set_description(f"{name}: {phases[which]}")

        if out is None:
            tables, manifest, error = simulate(spec, step, phase)
        else:
            folder, manifest, error = simulate_and_store(spec, out, step, phase)
    if error is not None and reraise:
        raise error
    if out is None:
        return store.in_memory(manifest, tables)
    return store.load(folder)


# ---------------------------------------------------------------- sweeps
def parse_params(items: Mapping[str, Sequence[Any]] | Iterable[str]) -> dict[str, list[Any]]:
    """Sweep axes from a mapping or from ``"key.path=v1,v2"`` strings."""
    if isinstance(items, Mapping):
        axes = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in items.items()}
    else:
        axes = {}
        for text in items:
            key, sep, values = text.partition("=")
            if not sep or not key.strip() or not values.strip():
                raise ConfigError("--param", text, "expected key.path=v1,v2,…",
                                  "e.g. hosting.mode=baremetal,vm,container")
            axes[key.strip()] = keypaths.split_values(values)
    for key, values in axes.items():
        if not values:
            raise ConfigError("--param", key, "no values", "one or more values")
    return axes


def plan(source: Source, params: Mapping[str, Sequence[Any]] | Iterable[str] = (),
         replications: int = 1, *, seed: int | None = None, set: Overrides = None,
         **overrides: Any) -> list[RunSpec]:
    """Every run of a sweep, validated up front (an invalid point stops it before it starts)."""
    if replications < 1:
        raise ConfigError("--replications", str(replications), "must be >= 1", "1, 2, 3, …")
    scenario, over = prepare(source, seed, set, **overrides)
    base_seed = scenario.validate(over).run.seed
    seeds = replication_seeds(base_seed, replications)
    axes = parse_params(params)
    specs: dict[str, RunSpec] = {}
    for point, combo in enumerate(itertools.product(*axes.values())):
        values = dict(zip(axes, combo, strict=True))
        point_config = cfg.resolved(scenario.with_overrides(values).validate([*over, *values]))
        for r, s in enumerate(seeds):
            config = copy.deepcopy(point_config)
            config["run"]["seed"] = s
            spec = RunSpec(config, scenario.label, str(scenario.base_dir), r, point, values,
                           base_seed)
            specs.setdefault(spec.run_id, spec)
    return list(specs.values())


def scenario_name(label: str) -> str:
    """A scenario's short name for messages: its file stem (``demo``), or the label."""
    return Path(label).stem if label.endswith(".toml") else label


def default_out(source: Source, kind: str = "sweep") -> Path:
    """Where a scenario's results go by default: ``results/<file stem>-<kind>``, where
    ``kind`` is ``run`` or ``sweep``, so single runs and sweeps never share a folder."""
    stem = find_scenario(source).stem if isinstance(source, str | Path) else "scenario"
    return Path("results") / f"{stem}-{kind}"


def sweep(source: Source, params: Mapping[str, Sequence[Any]] | Iterable[str] = (),
          replications: int = 1, *, seed: int | None = None, out: str | Path | None = None,
          set: Overrides = None, workers: int | None = None, dask: Any = None,
          backend: Backend | None = None, progress: bool | None = None,
          **overrides: Any) -> Results:
    """Run every point of a sweep × replications, resuming what is already stored.

    Parameters
    ----------
    source : path, experiment name, dict or ScenarioConfig
    params : mapping key path → values, or list of "key.path=v1,v2"
        The axes; their cartesian product gives the sweep points.
    replications : int
        Runs per point, with independent seeds derived from ``run.seed``.
    seed : int, optional
        Overrides the base seed ``run.seed``.
    out : path, optional
        The results store (default ``results/<file stem>-sweep``); runs already there
        are skipped.
    set : mapping or list of "key.path=value", optional
        Overrides applied to every point.
    workers : int, optional
        Local processes (default: one per core; 1 runs in this process).
    dask : str or distributed.Client, optional
        Run on a Dask cluster (``"tcp://host:8786"``) instead.
    backend : Backend, optional
        An explicit backend (overrides ``workers`` and ``dask``).
    progress : bool, optional
        Show a progress bar (default: only on a terminal).
    **overrides
        Shorthands as in :func:`run`.

    Returns
    -------
    Results
        The sweep's runs (``.runs``, ``.summary``, ``.summarize()``), with
        ``info`` = planned/skipped/ran/failed counts.
    """
    specs = plan(source, params, replications, seed=seed, set=set, **overrides)
    out_dir = Path(out) if out is not None else default_out(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    store.remove_stale_temporaries(out_dir)
    done = store.finished_run_ids(out_dir)
    todo = [s for s in specs if s.run_id not in done]
    failed: list[RunOutcome] = []
    task = functools.partial(execute, out_dir=str(out_dir))
    with _progress_bar(len(specs), "run", f"sweep {scenario_name(specs[0].source)}",
                       progress) as bar:
        bar.update(len(specs) - len(todo))
        if todo:
            with (backend or make_backend(workers=workers, dask=dask, tasks=len(todo))) as b:
                for outcome in b.map(task, todo):
                    if outcome.status != store.OK:
                        failed.append(outcome)
                    bar.update(1)
    results = store.load(out_dir, run_ids=[s.run_id for s in specs])
    results.info.update(planned=len(specs), skipped=len(specs) - len(todo), ran=len(todo),
                        failed=[f"{f.run_id}: {f.error}" for f in failed])
    return results

