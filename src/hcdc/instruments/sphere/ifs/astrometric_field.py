"""IFS astrometric calibration fields on the IFS Level 1 spatial grid: a simulated field (FITS
image, reference list CSV, truth JSON) and the measurement of plate scale and True North on it.

**What the file is.** Not a raw IFS detector frame (micro-spectra): simulating the raw frame of
a star field and extracting it through ``level1-ifs`` is left for later. The file is one image on
the grid of an IFS Level 1 cube (``level1_ifs.fits``: 7.46 mas/px, the IFS anamorphism already
corrected, the spectral channels collapsed), or a cube of such images (``(channels, y, x)`` or
``(channels, frames, y, x)``: the median over every leading axis is measured). Header keywords
read are those of the raw file (copied by whoever collapses a Level 1 cube): ``RA`` / ``DEC``
(deg, the tangent point), ``INS4 DROT2 MODE`` (``SKY`` expected), ``INS4 DROT2 POSANG`` (deg),
``INS2 COMB IFS`` (mode, stored as the filter), ``DATE-OBS`` (epoch).

**Convention.** The IFS field is turned by the instrument offset relative to IRDIS (vlt-sphere's
``instru_offset`` = -100.48 +- 0.10 deg for IFS; sphere.md section c; the derotation of
:mod:`hcdc.instruments.sphere.angles` adds it). The fitted rotation ``rho`` (``PA_sky = PA_det +
rho``) is ``POSANG + TN + offset``, so ``TN = rho - POSANG - (-100.48)``. One field cannot
separate the True North from the offset: the stored True North assumes the offset (the SPHERE
team measure TN on IRDIS and the offset between the arms; Maire et al. 2016).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.irdis.astrometric_field import (
    DPR_TYPE,
    measure_irdis_field,
    write_simulated_field,
)
from hcdc.science.simulation.astrometric_field import FieldSpec, simulate_field

__all__ = ["IFS_FIELD_SPEC", "IFS_FWHM_PX", "measure_ifs_field", "simulate_ifs_astrometric_field"]

#: lambda/D at 1.1 um (YJ, centre) on 7.46 mas/px: 1.1e-6 / 8.2 m = 27.7 mas = 3.7 px
IFS_FWHM_PX = 3.7

#: a dense cluster core (the IFS field is 2.2" across, 290 px): 14 stars in 1.6", J = 10-14;
#: on the Level 1 grid the anamorphism is corrected already, hence (1, 1)
IFS_FIELD_SPEC = FieldSpec(
    n_stars=14,
    field_arcsec=1.6,
    mag_range=(10.0, 14.0),
    scale_mas=sc.IFS_PIXEL_SCALE_MAS,
    anamorphism_xy=(1.0, 1.0),
    pointing_offset_mas=(40.0, -30.0),
    shape=(290, 290),
    fwhm_px=IFS_FWHM_PX,
    halo_fwhm_px=40.0,
)


def simulate_ifs_astrometric_field(
    out_dir: str | Path,
    spec: FieldSpec | None = None,
    *,
    seed: int = 1,
    posang_deg: float = 0.0,
    true_north_deg: float = sc.TRUE_NORTH_DEG,
    instrument_offset_deg: float = sc.IFS_INSTRUMENT_OFFSET_DEG,
    date_obs: str = "2026-03-15T01:23:45.000",
    ifs_mode: str = "OBS_YJ",
) -> dict[str, Path]:
    """Write ``ifs_astrometric_field.fits`` (one image on the IFS Level 1 grid, module doc),
    ``reference_list.csv`` and ``simulation_truth.json`` into ``out_dir``. The true rotation of
    ``spec`` (default :data:`IFS_FIELD_SPEC`) is ``posang_deg + true_north_deg +
    instrument_offset_deg``. Returns the three paths (keys ``fits``, ``catalogue``, ``truth``)."""
    spec = spec or IFS_FIELD_SPEC
    rotation = posang_deg + true_north_deg + instrument_offset_deg
    spec = FieldSpec(**{**spec.as_dict(), "rotation_deg": rotation})
    field = simulate_field(spec, np.random.default_rng(seed))
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    cards: list[tuple[str, Any, str]] = [
        ("TELESCOP", "ESO-VLT-U3", "ESO Telescope Name"),
        ("INSTRUME", "SPHERE", "Instrument used."),
        ("OBJECT", "IFS astrometric field (simulated)", "Target"),
        ("RA", spec.ra0_deg, "[deg] pointing, tangent point"),
        ("DEC", spec.dec0_deg, "[deg] pointing"),
        ("DATE-OBS", date_obs, "Observing date"),
        ("HIERARCH ESO DPR CATG", "CALIB", "Observation category"),
        ("HIERARCH ESO DPR TYPE", DPR_TYPE, "Observation type (assumed)"),
        ("HIERARCH ESO DPR TECH", "IFU", "Observation technique"),
        ("HIERARCH ESO SEQ ARM", "IFS", "Name of the arm used"),
        ("HIERARCH ESO INS2 COMB IFS", ifs_mode, "IFS mode"),
        ("HIERARCH ESO INS4 DROT2 MODE", "SKY", "Derotator mode"),
        ("HIERARCH ESO INS4 DROT2 POSANG", posang_deg, "[deg] Derotator PA"),
        ("HIERARCH HCDC PIXSCAL", sc.IFS_PIXEL_SCALE_MAS, "[mas/px] nominal Level 1 grid"),
        ("HIERARCH HCDC GRID", "IFS Level 1, channels collapsed", "image grid"),
        ("HIERARCH HCDC SIMULATED", True, "simulated field"),
    ]
    truth = {
        "true_north_deg": true_north_deg,
        "posang_deg": posang_deg,
        "instrument_offset_deg": instrument_offset_deg,
        "rotation_deg": rotation,
        "plate_scale_mas": spec.scale_mas,
        "seed": seed,
        "field": field["truth"],
    }
    return write_simulated_field(
        folder, "ifs_astrometric_field.fits", field["image"], cards, field["catalogue"], truth
    )


def measure_ifs_field(
    path: str | Path,
    catalogue: str | Path,
    *,
    expected_scale_mas: float = sc.IFS_PIXEL_SCALE_MAS,
    expected_true_north_deg: float = sc.TRUE_NORTH_DEG,
    instrument_offset_deg: float = sc.IFS_INSTRUMENT_OFFSET_DEG,
    fwhm_px: float = IFS_FWHM_PX,
    nsigma: float = 8.0,
    min_stars: int = 6,
    bootstrap: int = 300,
    affine: bool = False,
) -> dict[str, Any]:
    """Plate scale (mas/px of the Level 1 grid) and True North (deg, module convention) of one IFS
    field image; the dict of :func:`~hcdc.instruments.sphere.irdis.astrometric_field.
    measure_irdis_field` (no anamorphism applied: the grid is corrected) plus ``arm`` (IFS),
    ``instrument_offset_deg`` and ``filter`` = the IFS mode (``INS2 COMB IFS``). Raises
    AstrometricFieldError as that function does."""
    result = measure_irdis_field(
        path,
        catalogue,
        expected_scale_mas=expected_scale_mas,
        expected_true_north_deg=expected_true_north_deg,
        anamorphism_xy=None,
        fwhm_px=fwhm_px,
        nsigma=nsigma,
        min_stars=min_stars,
        bootstrap=bootstrap,
        instrument_offset_deg=instrument_offset_deg,
        affine=affine,
    )
    header = fits.getheader(path, 0)
    mode = str(header.get("HIERARCH ESO INS2 COMB IFS", "")).strip() or None
    result.pop("channel", None)
    return {**result, "arm": "IFS", "filter": mode, "instrument_offset_deg": instrument_offset_deg}
