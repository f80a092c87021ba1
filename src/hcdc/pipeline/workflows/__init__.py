"""The standard workflows of hcdc (content; the engine is :mod:`hcdc.pipeline.workflow`).

``irdis`` (``irdis-level1``, ``irdis-l1-l2``, ``irdis-calibrations``), ``ifs`` (``ifs-level1``,
``ifs-l1-l2``: Level 1 -> Level 2 ASDI -> Level 3 companion spectra), ``user_cube``
(``l2-user-cube``), ``interferometry`` (``oifits-fit``, Level 3 model fits).
"""
