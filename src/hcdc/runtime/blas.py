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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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

_controller: ThreadpoolController | None = None  # created on first use: it inspects loaded libraries


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
    for name in BLAS_THREAD_VARIABLES:
        os.environ[name] = str(threads)
    threadpool_limits(limits=threads)


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


__all__ = ["BLAS_THREAD_VARIABLES", "SMALL_PROBLEM", "blas_info", "blas_threads", "pin_blas_threads"]
