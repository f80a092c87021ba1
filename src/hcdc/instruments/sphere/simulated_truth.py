"""Truth files shared by the SPHERE night simulators (IRDIS and IFS).

Each simulated night writes ``simulation_truth.json`` (everything but big arrays, from the
night's ``to_dict()``) and ``simulation_truth.fits``, whose first extensions are the detector
maps of the :class:`hcdc.science.simulation.irdis.DetectorModel` the raw files were drawn with
(BIAS in ADU, DARK_CURRENT in ADU/s, FLAT relative, BADPIX bit mask: 1 hot, 2 dead,
4 non-linear); each simulator appends its own extensions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from astropy.io import fits

from hcdc.instruments.sphere.observing import PlannedExposure
from hcdc.science.simulation import irdis as sim

__all__ = [
    "SimulatedNightTruth",
    "SimulatedRawFile",
    "detector_map_hdus",
    "json_array",
    "raw_file_fields",
    "select_files",
    "write_truth_json",
]

#: File names of the truth written next to the raw files.
TRUTH_JSON, TRUTH_FITS = "simulation_truth.json", "simulation_truth.fits"


def json_array(values: np.ndarray) -> list[Any]:
    """Nested list with NaN (no star / no angle in calibration files) written as None (JSON null)."""
    return np.where(np.isnan(values), None, values).tolist()


@dataclass
class SimulatedRawFile:
    """One written raw SPHERE file and the truth of its timing and angles.

    ``dit`` in s; ``mjd_mid`` (UTC), ``parang`` and ``derot`` (deg; NaN for calibrations) are
    per DIT, at mid-DIT. Each simulator's file class adds its instrument's setup and star
    truth, and says where their keys go in :meth:`to_dict` (:meth:`setup_dict`, :meth:`truth_dict`).
    """

    path: Path
    dpr_catg: str
    dpr_type: str
    dpr_tech: str
    mode: str
    dit: float
    ndit: int
    nd: str
    date_obs: str
    fram_utc: str
    mjd_mid: np.ndarray
    parang: np.ndarray
    derot: np.ndarray

    def setup_dict(self) -> dict[str, Any]:
        """Instrument setup keys of :meth:`to_dict`, written after ``dpr_tech`` (none here)."""
        return {}

    def truth_dict(self) -> dict[str, Any]:
        """Instrument truth keys of :meth:`to_dict`, written after ``derot_deg`` (none here)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of the file (angles as ``parang_deg``/``derot_deg``, NaN as null)."""
        return {
            "path": str(self.path),
            "dpr_catg": self.dpr_catg,
            "dpr_type": self.dpr_type,
            "dpr_tech": self.dpr_tech,
            **self.setup_dict(),
            "mode": self.mode,
            "dit": self.dit,
            "ndit": self.ndit,
            "nd": self.nd,
            "date_obs": self.date_obs,
            "fram_utc": self.fram_utc,
            "mjd_mid": self.mjd_mid.tolist(),
            "parang_deg": json_array(self.parang),
            "derot_deg": json_array(self.derot),
            **self.truth_dict(),
        }


def raw_file_fields(path: Path, exp: PlannedExposure, truth: dict[str, Any]) -> dict[str, Any]:
    """The :class:`SimulatedRawFile` fields taken from the plan entry ``exp`` and the rendering truth.

    ``truth`` holds ``mjd_mid``, ``parang`` and ``derot`` per DIT; the instrument's setup
    (DPR TECH, mode) is the caller's.
    """
    return {
        "path": path,
        "dpr_catg": exp.dpr_catg,
        "dpr_type": exp.dpr_type,
        "dit": exp.dit,
        "ndit": exp.ndit,
        "nd": exp.nd,
        "date_obs": exp.date_obs,
        "fram_utc": exp.fram_utc,
        "mjd_mid": np.asarray(truth["mjd_mid"]),
        "parang": np.asarray(truth["parang"]),
        "derot": np.asarray(truth["derot"]),
    }


FileT = TypeVar("FileT", bound=SimulatedRawFile)


def select_files(
    files: Sequence[FileT], dpr_type: str | None = None, dit: float | None = None, **attributes: Any
) -> list[FileT]:
    """The ``files`` of a DPR TYPE and DIT (s, within 0.01 s) whose ``attributes`` equal the given values.

    None (for ``dpr_type``, ``dit`` or any attribute) selects any value; the order of ``files``
    (time order) is kept.
    """
    return [
        f
        for f in files
        if (dpr_type is None or f.dpr_type == dpr_type)
        and all(value is None or getattr(f, name) == value for name, value in attributes.items())
        and (dit is None or abs(f.dit - dit) < 0.01)
    ]


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
