"""BLAS / OpenMP thread pools: how many threads numpy's linear algebra may use.

Two situations, one module:

* a pool worker process runs one task at a time next to as many workers as cores, so its BLAS
  runs one thread (:func:`pin_blas_threads`, run by the executors' pool initializers);
* ADI post-processing works on tall-and-skinny (frames x pixels) or tiny batched (frames x
  frames) matrices, which multi-threaded BLAS makes slower on a few cores, so the algorithms
  limit BLAS while working on small problems (:func:`blas_threads`).

:func:`blas_info` reports what a process actually runs (tests, ``hcdc worker`` logs).
``threadpoolctl`` (a required dependency) resizes the pools of the libraries already loaded.
It imports nothing of hcdc, so every layer may use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from threadpoolctl import ThreadpoolController, threadpool_info, threadpool_limits

#: environment variables read by the BLAS / OpenMP libraries when they are loaded
BLAS_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

#: matrix size (elements, e.g. frames x pixels) below which BLAS threads only add overhead
SMALL_PROBLEM = 50_000_000

#: environment variable capping the threads of :func:`map_tasks` (e.g. 1 to run everything serially)
TASK_THREADS_VARIABLE = "HCDC_TASK_THREADS"

_controller: ThreadpoolController | None = None  # created on first use: it inspects loaded libraries
_pinned: int | None = None  # the limit of pin_blas_threads, when this process is one of N workers

T = TypeVar("T")
R = TypeVar("R")


def pin_blas_threads(threads: int = 1) -> None:
    """Limit the BLAS/OpenMP thread pools of THIS process to ``threads``.

    Why: a worker process runs one task at a time, and there are as many workers as cores. If
    each worker's numpy/scipy BLAS (OpenBLAS, MKL) also started one thread per core, N workers
    would run N x N threads on N cores, and the context switching and cache thrashing make
    the whole batch several times slower. One BLAS thread per worker process keeps exactly one
    busy thread per core.

    The variables are read by the libraries when they are LOADED, so they only take effect if
    set before numpy is imported in the process: that is the case in a worker initializer of a
    ``spawn`` process pool, which starts a fresh interpreter. When numpy is already loaded
    (a ``fork`` pool, a Dask worker that imported numpy, a parent script re-imported by
    ``spawn``), threadpoolctl resizes the loaded pools at run time too.
    """
    global _pinned
    for name in BLAS_THREAD_VARIABLES:
        os.environ[name] = str(threads)
    threadpool_limits(limits=threads)
    _pinned = threads


@contextmanager
def blas_threads(size: int, limit: int = 1) -> Iterator[None]:
    """Limit BLAS to ``limit`` threads while working on a matrix of ``size`` elements, if it is small.

    The matrices of ADI post-processing are tall and skinny (frames x pixels) or tiny (frames x
    frames, batched); on a few cores multi-threaded BLAS makes them slower (2 threads on 2 cores:
    SVD 2x slower, batched ``eigh`` 3x slower measured here). Large problems
    (>= :data:`SMALL_PROBLEM` elements, e.g. SPHERE IRDIS cubes) keep the default threads.
    """
    global _controller
    if size >= SMALL_PROBLEM:
        yield
        return
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=limit, user_api="blas"):
        yield


def task_threads() -> int:
    """How many independent numerical tasks this process should run at once (:func:`map_tasks`).

    ``$HCDC_TASK_THREADS`` when set; else the limit of :func:`pin_blas_threads` when this
    process is one of a pool's workers (the pool already keeps one busy thread per core: more
    would only oversubscribe them); else the number of cores.
    """
    value = os.environ.get(TASK_THREADS_VARIABLE)
    if value:
        try:
            threads = int(value)
        except ValueError:
            raise ValueError(f"${TASK_THREADS_VARIABLE} must be a whole number; got {value!r}") from None
        return max(1, threads)
    if _pinned is not None:
        return max(1, _pinned)
    return max(1, os.cpu_count() or 1)


def map_tasks(function: Callable[[T], R], items: Sequence[T], threads: int | None = None) -> list[R]:
    """``[function(item) for item in items]``, the items run on up to ``threads`` threads at once.

    For independent pieces of numerical work (a reduction per fake-injection pass, per
    wavelength plane) whose time goes mostly into numpy, scipy and LAPACK calls that release
    the GIL. While they run, BLAS is limited to one thread per task (``threads`` tasks x the
    default BLAS threads would oversubscribe the cores), so give only problems that already run
    BLAS on one thread (below :data:`SMALL_PROBLEM` elements, :func:`blas_threads`) when the
    results must not depend on ``threads``: each item is then computed by exactly the same
    operations as in the serial loop, and the results are identical. ``threads`` defaults to
    :func:`task_threads`; 1 (or a single item) runs the plain loop in this thread. Results in
    the order of ``items``; the first exception raised by a task is raised here (the other
    tasks are still waited for).
    """
    items = list(items)
    threads = min(task_threads() if threads is None else max(1, int(threads)), len(items))
    if threads <= 1:
        return [function(item) for item in items]
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    with (
        _controller.limit(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hcdc-task") as pool,
    ):
        futures = [pool.submit(function, item) for item in items]
        return [future.result() for future in futures]


def blas_info() -> dict[str, Any]:
    """This process's BLAS settings: ``pid``, ``env`` (the variables of
    :data:`BLAS_THREAD_VARIABLES`) and ``pools`` (the number of threads of each loaded
    BLAS/OpenMP pool, by internal API name)."""
    import numpy  # noqa: F401 - load BLAS so that its pool is reported

    return {
        "pid": os.getpid(),
        "env": {v: os.environ.get(v) for v in BLAS_THREAD_VARIABLES},
        "pools": {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()},
    }


__all__ = [
    "BLAS_THREAD_VARIABLES",
    "SMALL_PROBLEM",
    "TASK_THREADS_VARIABLE",
    "blas_info",
    "blas_threads",
    "map_tasks",
    "pin_blas_threads",
    "task_threads",
]
