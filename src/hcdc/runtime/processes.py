"""Child processes that do not outlive their parent.

A process pool's workers (``hcdc worker --processes N``, ``hcdc ingest``'s readers) block on
their task queue; when the parent is killed with SIGKILL nobody tells them, and they used to
live on for ever (one ~285 MB process per worker). :func:`exit_with_parent`, run in the pool's
initializer, starts a daemon thread that ends the child as soon as its parent is gone.

Why a liveness check and not ``prctl(PR_SET_PDEATHSIG)``: Linux delivers the death signal when
the *thread* that created the child exits, and a pool creates its processes from whichever
thread submits a task; a short-lived submitting thread would kill healthy workers. The parent's
pid is compared with ``os.getppid()`` (which changes when the child is re-parented), so the
check is portable and costs one system call per interval.
"""

from __future__ import annotations

import os
import threading

#: seconds between two checks of the parent (the longest an orphan survives its parent)
PARENT_CHECK_INTERVAL_S = 0.5


def exit_with_parent(parent_pid: int, interval_s: float = PARENT_CHECK_INTERVAL_S) -> None:
    """End this process (exit status 1, no clean-up) once ``parent_pid`` is no longer its parent."""

    def check() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(interval_s)
        os._exit(1)  # the parent is gone: its task results have nowhere to go

    threading.Thread(target=check, name="hcdc-exit-with-parent", daemon=True).start()
