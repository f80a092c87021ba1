"""Truth files shared by the SPHERE night simulators (IRDIS and IFS).

Each simulated night writes ``simulation_truth.json`` (everything but big arrays, from the
night's ``to_dict()``) and ``simulation_truth.fits``, whose first extensions are the detector
maps of the :class:`hcdc.science.simulation.irdis.DetectorModel` the raw files were drawn with
(BIAS in ADU, DARK_CURRENT in ADU/s, FLAT relative, BADPIX bit mask: 1 hot, 2 dead,
4 non-linear); each simulator appends its own extensions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from astropy.io import fits

from hcdc.science.simulation import irdis as sim

__all__ = ["SimulatedNightTruth", "detector_map_hdus", "write_truth_json"]

#: File names of the truth written next to the raw files.
TRUTH_JSON, TRUTH_FITS = "simulation_truth.json", "simulation_truth.fits"


class SimulatedNightTruth(Protocol):
    """What :func:`write_truth_json` needs of a simulated night."""

    out_dir: Path
    truth_json: Path | None
    truth_fits: Path | None

    def to_dict(self) -> dict[str, Any]: ...


def write_truth_json(night: SimulatedNightTruth) -> Path:
    """Write ``night.to_dict()`` to ``out_dir/simulation_truth.json``; return the FITS truth path.

    Sets ``night.truth_json`` and ``night.truth_fits`` (the latter is written by the caller).
    Values JSON cannot hold are written as their ``str``.
    """
    night.truth_json = night.out_dir / TRUTH_JSON
    night.truth_fits = night.out_dir / TRUTH_FITS
    night.truth_json.write_text(json.dumps(night.to_dict(), indent=1, default=str))
    return night.truth_fits


def detector_map_hdus(
    detector: sim.DetectorModel, extra: Iterable[tuple[str, np.ndarray, str]] = ()
) -> list[Any]:
    """An empty primary HDU, then one image per detector map and per ``(name, data, unit)`` of ``extra``.

    Maps are written as float32 (BADPIX and other uint8 masks as uint8), with their unit in
    BUNIT.
    """
    hdus: list[Any] = [fits.PrimaryHDU()]
    for name, data, unit in (
        ("BIAS", detector.bias, "adu"),
        ("DARK_CURRENT", detector.dark_current, "adu/s"),
        ("FLAT", detector.flat, ""),
        ("BADPIX", detector.bad_pixels, ""),
        *extra,
    ):
        hdu = fits.ImageHDU(
            np.asarray(data, dtype=np.uint8 if data.dtype == np.uint8 else np.float32), name=name
        )
        hdu.header["BUNIT"] = unit
        hdus.append(hdu)
    return hdus
