"""The standard workflows of hcdc (content; the engine is :mod:`hcdc.pipeline.workflow`).

``irdis`` (``irdis-level1``, ``irdis-l1-l2``, ``irdis-calibrations``), ``user_cube``
(``l2-user-cube``), ``interferometry`` (``oifits-fit``, Level 3 model fits).
"""
