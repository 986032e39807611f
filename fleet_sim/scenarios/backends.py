"""Where the runs of a sweep execute: here, in local processes, or on a Dask cluster.

Every backend maps a picklable function over tasks and yields the results as
they complete. A run's result depends only on its config and seed, so all
backends give identical tables; only the order of completion differs.

- :class:`Serial`: one after the other in this process.
- :class:`ProcessPool`: a local pool (default one worker per core). Workers start
  from a fork server that has already imported the simulator, so they are quick to
  start and inherit no threads.
- :class:`DaskCluster`: an existing ``distributed`` cluster, by address
  (``tcp://host:8786``) or by ``Client``. Workers need fleet_sim installed and the
  same paths to the results folder and to any trace files (a shared file system).
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from fleet_sim.errors import FleetSimError

T = TypeVar("T")
R = TypeVar("R")


class Backend(ABC):
    """Executes tasks; use as a context manager so resources are released."""

    @abstractmethod
    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[R]:
        """``fn(task)`` for every task, yielded in order of completion."""

    def close(self) -> None:
        """Release workers and connections (nothing to release by default)."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Serial(Backend):
    """Runs tasks one by one in this process."""

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[R]:
        for task in tasks:
            yield fn(task)


@contextlib.contextmanager
def _independent_workers() -> Iterator[None]:
    """While workers start, make them independent of where and how the parent runs.

    - ``PYTHONSAFEPATH=1``: a worker interpreter does not put the current folder first
      on ``sys.path``, so a folder named ``fleet_sim`` there (such as a checkout) does
      not shadow the installed package.
    - ``__main__`` is presented as ``fleet_sim.__main__``, which multiprocessing never
      re-imports: workers otherwise re-import the parent's main module, which for a
      script without an ``if __name__ == "__main__":`` guard would run the script (and
      its sweep) again in every worker. Tasks are functions of fleet_sim, so workers
      need nothing from the script.
    """
    main = sys.modules["__main__"]
    saved_env, saved_spec = os.environ.get("PYTHONSAFEPATH"), getattr(main, "__spec__", None)
    os.environ["PYTHONSAFEPATH"] = "1"
    main.__spec__ = importlib.util.find_spec("fleet_sim.__main__")
    try:
        yield
    finally:
        main.__spec__ = saved_spec
        if saved_env is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = saved_env


class ProcessPool(Backend):
    """A pool of ``workers`` local processes (default: ``os.cpu_count()``), independent
    of the current folder and of the parent's main script."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[R]:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() \
            else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["fleet_sim.scenarios.runner"])
        pool = ProcessPoolExecutor(max_workers=min(self.workers, max(1, len(tasks))),
                                   mp_context=context)
        try:
            with _independent_workers():  # every worker starts here, at its first task
                futures = {pool.submit(fn, task): task for task in tasks}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        raise _worker_died(futures[future], len(pending)) from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _worker_died(task: Any, pending: int) -> FleetSimError:
    name = getattr(task, "run_id", None) or repr(task)
    return FleetSimError(
        f"a worker process died while running {name} ({pending} more not finished): it was "
        "killed, ran out of memory or crashed the interpreter; finished runs are stored, "
        "so the same command resumes (--workers 1 runs in this process, to see the cause)")


class DaskCluster(Backend):
    """Tasks on a Dask ``distributed`` cluster given by address or by ``Client``."""

    def __init__(self, cluster: Any):
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - depends on the installation
            raise FleetSimError("--dask needs dask[distributed]: "
                                "pip install 'fleet_sim[dask]'") from None
        self._own = isinstance(cluster, str)
        self.client = Client(cluster) if self._own else cluster

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[R]:
        from distributed import as_completed

        futures = self.client.map(fn, list(tasks), pure=False)
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        if self._own:
            self.client.close()


def make_backend(workers: int | None = None, dask: Any = None,
                 tasks: int | None = None) -> Backend:
    """The backend for the options of ``fleet-sim sweep``: ``dask`` (address or Client)
    if given; else ``workers`` local processes (default one per core, at most one per
    task), or :class:`Serial` for a single worker."""
    if dask is not None:
        return DaskCluster(dask)
    n = workers or os.cpu_count() or 1
    if tasks is not None:
        n = min(n, tasks)
    return Serial() if n <= 1 else ProcessPool(n)
