"""hcdc.runtime.blas.map_tasks / task_threads: independent numerical tasks on a few threads."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from hcdc.runtime import blas


def test_map_tasks_keeps_the_order_and_runs_on_several_threads():
    names = set()
    barrier = threading.Barrier(2, timeout=10)

    def task(k):
        names.add(threading.current_thread().name)
        if k < 2:
            barrier.wait()  # both first tasks must be running at once, or this times out
        return k * k

    assert blas.map_tasks(task, range(6), threads=2) == [k * k for k in range(6)]
    assert len(names) == 2 and all(n.startswith("hcdc-task") for n in names)


def test_map_tasks_limits_blas_to_one_thread_while_tasks_run():
    def pools(_):
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    for seen in blas.map_tasks(pools, range(3), threads=2):
        assert seen and all(n == 1 for n in seen)


def test_one_thread_is_the_plain_loop_in_this_thread():
    here = threading.current_thread().name
    assert blas.map_tasks(lambda _: threading.current_thread().name, range(3), threads=1) == [here] * 3


def test_a_failing_task_raises_its_own_error():
    def task(k):
        if k == 3:
            raise ValueError("task 3 failed")
        return k

    with pytest.raises(ValueError, match="task 3 failed"):
        blas.map_tasks(task, range(5), threads=2)


def test_task_threads_environment_and_pinned_workers(monkeypatch):
    monkeypatch.setattr(blas, "_pinned", None)
    monkeypatch.setenv(blas.TASK_THREADS_VARIABLE, "3")
    assert blas.task_threads() == 3
    monkeypatch.setenv(blas.TASK_THREADS_VARIABLE, "lots")
    with pytest.raises(ValueError, match="HCDC_TASK_THREADS must be a whole number"):
        blas.task_threads()
    monkeypatch.delenv(blas.TASK_THREADS_VARIABLE)
    # One of a pool's N workers (BLAS pinned to 1 thread) runs its tasks one at a time.
    monkeypatch.setattr(blas, "_pinned", 1)
    assert blas.task_threads() == 1
    monkeypatch.setattr(blas, "_pinned", None)
    assert blas.task_threads() >= 1


def test_parallel_numpy_work_is_identical_to_serial():
    rng = np.random.default_rng(1)
    mats = [rng.normal(size=(60, 400)) for _ in range(6)]

    def work(m):
        return np.linalg.eigh(m @ m.T)[1][:, -5:].T @ m * (m.T @ m)[:5, :5].sum()

    serial = blas.map_tasks(work, mats, threads=1)
    parallel = blas.map_tasks(work, mats, threads=3)
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))
