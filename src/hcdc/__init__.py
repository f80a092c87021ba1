"""hcdc: an open-source data centre for high-angular-resolution astronomy.

Layers (each imports only the ones below it)::

    hcdc.cli, hcdc.web          thin interfaces
    hcdc.pipeline               recipes, workflows, jobs, provenance
    hcdc.archive                catalogue (SQL), storage, access control
    hcdc.instruments            header knowledge, classification, calibration rules
    hcdc.science                pure functions on arrays and tables
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hcdc")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
