"""The recipes shipped with hcdc: thin wrappers of the science and instrument code (no science here).

One module per recipe (or family): ``level1_irdis`` (``level1-irdis``), ``postprocess``
(``l2-postprocess``), ``simulate_irdis`` (``simulate-irdis``), ``simulate_ifs``
(``simulate-ifs``), ``irdis_masters`` (``irdis-masters``), ``interferometry`` (``oifits-fit``).
The framework they build on is :mod:`hcdc.pipeline.recipe` / :mod:`hcdc.pipeline.registry`.
"""
