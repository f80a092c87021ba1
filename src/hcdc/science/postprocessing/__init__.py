"""hcdc.science.postprocessing: Level 2 high-contrast post-processing (pure functions on arrays).

Importing this package registers every algorithm in :data:`base.ALGORITHMS`.
"""

from __future__ import annotations

import importlib

from hcdc.science.postprocessing.base import (
    ALGORITHMS,
    AlgorithmSpec,
    collapse_frames,
    derotate_and_collapse,
    get_algorithm,
    register_algorithm,
)

# Algorithm modules register themselves on import.
_ALGORITHM_MODULES = ("adi", "pca", "loci", "sdi", "rdi", "simple")
for _module in _ALGORITHM_MODULES:
    importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "ALGORITHMS",
    "AlgorithmSpec",
    "collapse_frames",
    "derotate_and_collapse",
    "get_algorithm",
    "register_algorithm",
]
