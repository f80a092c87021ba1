"""Executors: where tasks run -- inline, in a local process pool, or on a Dask cluster.

One interface for all three (:class:`Executor`):

* ``submit(fn, *args, **kwargs)`` returns a :class:`concurrent.futures.Future` (Dask futures are
  adapted), so callers wait with :func:`concurrent.futures.wait` / ``as_completed`` whatever
  the executor;
* ``map(fn, items)`` runs ``fn`` on every item and returns one :class:`TaskOutcome` per item,
  in order: a task that raises records its error and traceback and never blocks the others.

Executors:

* :class:`InlineExecutor` runs each task immediately in the calling thread (debugging, tests,
  a laptop reducing one dataset);
* :class:`ProcessPoolExecutor` runs tasks in local worker processes (``spawn`` start method,
  BLAS pinned to one thread per worker, see :func:`hcdc.runtime.blas.pin_blas_threads`); a worker process ends
  within a second when its parent dies, even by SIGKILL (:func:`init_pool_process`);
* :class:`DaskExecutor` runs tasks on a Dask distributed cluster: ``DaskExecutor(address)``
  connects to a running scheduler (``dask scheduler`` + ``dask worker`` on other machines, or
  ``dask-jobqueue`` clusters on SLURM/OAR/PBS), ``DaskExecutor()`` starts a ``LocalCluster``.

Functions and arguments sent to process-pool and Dask workers must be picklable: module-level
functions of importable modules (as recipes and :mod:`hcdc.pipeline.workflow` tasks are).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from hcdc.runtime.blas import pin_blas_threads
from hcdc.runtime.processes import exit_with_parent


def init_pool_process(blas: int, parent_pid: int) -> None:
    """Initializer of hcdc's pool processes: BLAS pinned to ``blas`` threads, and the process
    ends when ``parent_pid`` dies (:func:`hcdc.runtime.processes.exit_with_parent`)."""
    pin_blas_threads(blas)
    exit_with_parent(parent_pid)


# --------------------------------------------------------------------------------------------
# outcomes


@dataclass
class TaskOutcome:
    """What one task gave: its value, or the error (``"Type: message"``) and traceback text.

    ``seconds`` is the wall time from submission to completion as seen by the caller.
    """

    key: Any
    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0


def outcome_of(future: cf.Future, key: Any = None, submitted: float | None = None) -> TaskOutcome:
    """The :class:`TaskOutcome` of a finished future (never raises for a task error)."""
    seconds = time.perf_counter() - submitted if submitted is not None else 0.0
    if future.cancelled():
        return TaskOutcome(key=key, ok=False, error="CancelledError: task cancelled", seconds=seconds)
    exc = future.exception()
    if exc is None:
        return TaskOutcome(key=key, ok=True, value=future.result(), seconds=seconds)
    # the text includes the worker-side traceback (chained as the cause by process pools,
    # rebuilt by Dask)
    text = "".join(traceback.format_exception(exc))
    return TaskOutcome(
        key=key, ok=False, error=f"{type(exc).__name__}: {exc}", traceback=text, seconds=seconds
    )


# --------------------------------------------------------------------------------------------
# executors


class Executor:
    """Common interface; subclasses implement :meth:`submit` (and :meth:`close` if needed)."""

    kind: str = "base"

    @property
    def workers(self) -> int:
        """How many tasks run at the same time."""
        return 1

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future:
        raise NotImplementedError

    def map(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        *,
        keys: Sequence[Any] | None = None,
        on_done: Callable[[TaskOutcome], None] | None = None,
    ) -> list[TaskOutcome]:
        """Run ``fn(item)`` for every item; outcomes in item order, failures recorded.

        ``keys`` name the tasks in the outcomes (default: the item's index); ``on_done`` is
        called with each outcome as it completes (progress bars).
        """
        items = list(items)
        keys = list(keys) if keys is not None else list(range(len(items)))
        if len(keys) != len(items):
            raise ValueError(f"map: {len(keys)} keys for {len(items)} items")
        started = time.perf_counter()
        futures = {}
        for index, item in enumerate(items):
            futures[self.submit(fn, item)] = index
        outcomes: list[TaskOutcome | None] = [None] * len(items)
        for future in cf.as_completed(futures):
            index = futures[future]
            outcome = outcome_of(future, keys[index], started)
            outcomes[index] = outcome
            if on_done is not None:
                on_done(outcome)
        return outcomes  # type: ignore[return-value]

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} workers={self.workers}>"


class InlineExecutor(Executor):
    """Runs every task immediately, in the calling thread; returns finished futures."""

    kind = "inline"

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_running_or_notify_cancel()
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - recorded in the future like the other executors
            future.set_exception(exc)
        else:
            future.set_result(value)
        return future


class ProcessPoolExecutor(Executor):
    """Local worker processes (``workers``, default: one per core), BLAS pinned to 1 thread.

    ``start_method`` is ``spawn`` by default: each worker is a fresh interpreter, so the BLAS
    variables set by the initializer are in place before numpy loads, and nothing of the
    parent's state (open database connections, threads) is inherited.
    """

    kind = "process"

    def __init__(self, workers: int | None = None, *, start_method: str = "spawn") -> None:
        self._workers = workers or os.cpu_count() or 1
        self._start_method = start_method
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context(self._start_method),
            initializer=init_pool_process,
            initargs=(1, os.getpid()),
        )

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future:
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): the tasks it held and those queued with it
            # were failed with BrokenProcessPool. Start a fresh pool so later tasks still run.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Tasks on a Dask distributed cluster, behind the same interface.

    ``DaskExecutor("tcp://scheduler:8786")`` connects to a running scheduler;
    ``DaskExecutor(client=client)`` uses an existing client (not closed by :meth:`close`);
    ``DaskExecutor()`` starts a ``LocalCluster`` with ``n_workers`` processes of
    ``threads_per_worker`` threads (1: one task per process, like the process pool).

    BLAS threads: Dask's nanny starts worker processes with OMP/MKL/OPENBLAS_NUM_THREADS=1
    (``distributed.nanny.pre-spawn-environ``); :func:`~hcdc.runtime.blas.pin_blas_threads` is also run on
    every worker present at connection, for workers started without a nanny.
    Tasks are submitted with ``pure=False``: two runs of the same recipe on the same inputs are
    two tasks, never deduplicated by Dask.
    """

    kind = "dask"

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        processes: bool = True,
        **cluster_kwargs: Any,
    ) -> None:
        from distributed import Client, LocalCluster

        self._cluster = None
        self._owns_client = client is None
        if client is not None:
            self.client = client
        elif address is not None:
            self.client = Client(address)
        else:
            # any free port for the scheduler's HTTP server: 8787 may be taken by another cluster
            cluster_kwargs.setdefault("dashboard_address", ":0")
            self._cluster = LocalCluster(
                n_workers=n_workers or os.cpu_count() or 1,
                threads_per_worker=threads_per_worker,
                processes=processes,
                **cluster_kwargs,
            )
            self.client = Client(self._cluster)
        self.client.run(pin_blas_threads, 1)
        # keep each Dask future alive until its result has been copied: Dask forgets a task
        # (and may cancel it) as soon as no client-side future refers to it
        self._pending: dict[cf.Future, Any] = {}
        self._lock = threading.Lock()

    @property
    def workers(self) -> int:
        info = self.client.scheduler_info()
        return sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()) or 1

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future:
        dask_future = self.client.submit(fn, *args, pure=False, **kwargs)
        future: cf.Future = cf.Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            self._pending[future] = dask_future
        dask_future.add_done_callback(lambda done: self._transfer(done, future))
        return future

    def _transfer(self, dask_future: Any, future: cf.Future) -> None:
        """Copy a finished Dask future's value or exception into ``future`` (callback thread)."""
        try:
            value = dask_future.result()
        except BaseException as exc:  # noqa: BLE001 - task errors and cancellation alike
            future.set_exception(exc)
        else:
            future.set_result(value)
        finally:
            with self._lock:
                self._pending.pop(future, None)

    def close(self) -> None:
        if self._owns_client and self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def make_executor(
    kind: str = "inline", *, workers: int | None = None, address: str | None = None
) -> Executor:
    """An executor by name: ``inline``, ``process`` (``workers`` processes) or ``dask``
    (``address`` of a scheduler, or a LocalCluster of ``workers`` processes)."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "process":
        return ProcessPoolExecutor(workers)
    if kind == "dask":
        return DaskExecutor(address, n_workers=workers)
    raise ValueError(f"unknown executor {kind!r}; choose inline, process or dask")


__all__ = [
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "ProcessPoolExecutor",
    "TaskOutcome",
    "make_executor",
    "outcome_of",
]
