"""Named fault points: kill this process with SIGKILL at a chosen point (fault-injection tests).

``HCDC_FAULT_POINT=worker.after_publish hcdc worker --once`` makes the worker kill itself
(SIGKILL, as ``kill -9`` or the kernel's OOM killer would) when it reaches the point named
``worker.after_publish``; ``NAME@N`` kills at the N-th time the point is reached (default 1).
The fault suite (``tests/faults``, ``make faults``) uses it to crash ingest, workers and
``watch`` at exact moments and then checks that a restart leaves a clean store (``hcdc fsck``).

The variable is read once, at import: when it is unset a fault point costs one comparison with
None. The points are listed in docs/reliability.md.
"""

from __future__ import annotations

import os
import signal

FAULT_POINT_VARIABLE = "HCDC_FAULT_POINT"

_name, _, _count = (os.environ.get(FAULT_POINT_VARIABLE) or "").partition("@")
_ARMED: str | None = _name or None
_remaining = int(_count) if _count else 1


def fault_point(name: str) -> None:
    """SIGKILL this process if ``name`` is the armed fault point (see the module doc)."""
    global _remaining
    if _ARMED is None or name != _ARMED:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
