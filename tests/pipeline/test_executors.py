"""Executors: one interface (submit/map) inline, in a process pool and on a Dask LocalCluster."""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import time

import pytest

from hcdc.pipeline.executors import (
    DaskExecutor,
    InlineExecutor,
    ProcessPoolExecutor,
    make_executor,
)
from hcdc.runtime.blas import blas_info


@pytest.fixture(scope="module")
def process_pool():
    with ProcessPoolExecutor(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def dask_local():
    with DaskExecutor(n_workers=2, threads_per_worker=1, processes=True, silence_logs=40) as executor:
        yield executor


@pytest.fixture(params=["inline", "process", "dask"])
def executor(request):
    if request.param == "inline":
        return InlineExecutor()
    return request.getfixturevalue("process_pool" if request.param == "process" else "dask_local")


def test_submit_returns_a_standard_future(executor):
    future = executor.submit(math.pow, 2.0, 10)
    assert isinstance(future, cf.Future)
    assert future.result(timeout=60) == 1024.0
    failing = executor.submit(math.sqrt, -1.0)
    assert isinstance(failing.exception(timeout=60), ValueError)  # the worker's exception type


def test_map_records_failures_without_blocking_the_others(executor):
    seen = []
    outcomes = executor.map(math.sqrt, [4.0, -1.0, 9.0, 16.0], keys=["a", "b", "c", "d"], on_done=seen.append)
    assert [o.key for o in outcomes] == ["a", "b", "c", "d"]
    assert [o.ok for o in outcomes] == [True, False, True, True]
    assert [o.value for o in outcomes if o.ok] == [2.0, 3.0, 4.0]
    failed = outcomes[1]
    assert failed.error == "ValueError: math domain error"
    assert "ValueError" in failed.traceback and "math domain error" in failed.traceback
    assert len(seen) == 4 and all(o.seconds >= 0 for o in outcomes)


def test_workers_are_other_processes_with_one_blas_thread(executor):
    if executor.kind == "inline":
        assert executor.submit(os.getpid).result() == os.getpid()
        return
    infos = [o.value for o in executor.map(_blas_info_after_pause, range(4))]
    assert all(info["pid"] != os.getpid() for info in infos)
    assert len({info["pid"] for info in infos}) == 2  # both workers took tasks
    for info in infos:
        assert info["env"]["OPENBLAS_NUM_THREADS"] == "1" and info["env"]["OMP_NUM_THREADS"] == "1"
        assert info["env"]["MKL_NUM_THREADS"] == "1"
        # the BLAS pools actually loaded by numpy in the worker run one thread (seen with threadpoolctl)
        if info["pools"] is not None:
            assert info["pools"] and set(info["pools"].values()) == {1}


def _blas_info_after_pause(_):
    # a short pause so that the two workers both get tasks
    time.sleep(0.3)
    return blas_info()


def test_parallel_tasks_overlap(process_pool):
    process_pool.map(abs, [1, 2])  # workers started
    t0 = time.perf_counter()
    outcomes = process_pool.map(time.sleep, [0.8, 0.8])
    assert all(o.ok for o in outcomes)
    assert time.perf_counter() - t0 < 1.5  # 2 x 0.8 s ran side by side


def test_make_executor():
    assert isinstance(make_executor("inline"), InlineExecutor)
    with pytest.raises(ValueError, match="unknown executor 'slurm'"):
        make_executor("slurm")
    with make_executor("process", workers=1) as executor:
        assert executor.workers == 1 and executor.submit(abs, -3).result(timeout=60) == 3


def test_process_pool_survives_a_killed_worker():
    with ProcessPoolExecutor(1) as executor:
        crashed = executor.map(os._exit, [3])[0]  # the worker process dies without a word
        assert not crashed.ok and crashed.error.startswith("BrokenProcessPool")
        assert executor.submit(abs, -2).result(timeout=60) == 2  # a fresh pool takes over


def test_dask_task_that_kills_its_worker_is_recorded_and_the_cluster_goes_on():
    import dask
    import distributed  # noqa: F401 - registers its config defaults BEFORE config.set below: leaving
    # the `with` block restores the config as it was, and would drop defaults registered inside it

    # no retry of a task whose worker died (default: tried on 3 more workers first)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with DaskExecutor(n_workers=2, threads_per_worker=1, processes=True, silence_logs=50) as executor:
            crashed = executor.map(os._exit, [3])[0]
            assert not crashed.ok and crashed.error.startswith("KilledWorker")
            assert [o.value for o in executor.map(math.sqrt, [4.0, 9.0])] == [2.0, 3.0]
