"""hcdc.science.postprocessing: Level 2 high-contrast post-processing (pure functions on arrays).

Importing this package registers every algorithm in :data:`base.ALGORITHMS`: hcdc's own modules
and those of installed plugins, all declared as ``hcdc.algorithms`` entry points
(:func:`hcdc.runtime.plugins.load_plugins`; :func:`load_plugins` again after installing one).
"""

from __future__ import annotations

from hcdc.runtime.plugins import GROUPS
from hcdc.runtime.plugins import load_plugins as _load_plugins
from hcdc.science.postprocessing.base import (
    ALGORITHMS,
    AlgorithmSpec,
    collapse_frames,
    derotate_and_collapse,
    get_algorithm,
    register_algorithm,
)


def load_plugins() -> list[str]:
    """Import hcdc's algorithm modules and the ``hcdc.algorithms`` entry points not imported yet;
    returns what was newly imported."""
    return _load_plugins(GROUPS["algorithms"])


load_plugins()

__all__ = [
    "ALGORITHMS",
    "AlgorithmSpec",
    "collapse_frames",
    "derotate_and_collapse",
    "get_algorithm",
    "load_plugins",
    "register_algorithm",
]
