"""VLT/SPHERE facts used by the Level 1 reduction and the raw-data simulator.

Pure data plus tiny header helpers. Every value cites its source as collected in
``shared/reference/sphere.md`` (short names: *vlt-sphere* = A. Vigan's pipeline v1.8,
*IRDAP*, *pyKLIP*, *Maire 2016* = Maire et al. 2016, SPIE 9908, *ESO QC* = ESO quality-control
pages). Units are in the names or the comments: degrees, metres, nanometres, mas/px, seconds.

Pixel positions follow numpy order where a tuple is named ``_yx`` and (x, y) where it is named
``_xy``; detector coordinates are 0-based on the raw IRDIS frame (1024 rows x 2048 columns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PARANAL_LAT_DEG",
    "PARANAL_LON_DEG",
    "PARANAL_HEIGHT_M",
    "TELESCOPE_DIAMETER_M",
    "IRDIS_PIXEL_SCALE_MAS",
    "IRDIS_PIXEL_SCALE_ERR_MAS",
    "IFS_PIXEL_SCALE_MAS",
    "PUPIL_OFFSET_DEG",
    "PUPIL_OFFSET_ERR_DEG",
    "IFS_INSTRUMENT_OFFSET_DEG",
    "TRUE_NORTH_DEG",
    "TRUE_NORTH_ERR_DEG",
    "DEROTATOR_FIX_DATE",
    "IRDIS_ANAMORPHISM_XY",
    "IFS_ANAMORPHISM_XY",
    "WAFFLE_DISTANCE_LD",
    "WAFFLE_ORIENTATION_OFFSET_DEG",
    "WAFFLE_BOX_PX",
    "IRDIS_FILTER_COMBINATIONS",
    "ND_TRANSMISSION",
    "ND_TRANSMISSION_WAVELENGTHS_NM",
    "IRDIS_RAW_SHAPE",
    "IRDIS_FIELD_WIDTH",
    "IRDIS_DEAD_ROWS",
    "IRDIS_DEAD_COLUMNS",
    "IRDIS_CENTER_GUESS_XY",
    "IFS_CENTER_GUESS_XY",
    "IRDIS_GAIN_E_PER_ADU",
    "IFS_GAIN_E_PER_ADU",
    "IRDIS_PAC_UM_PER_PX",
    "DerotatorInfo",
    "Timing",
    "header_value",
    "parse_packed_sexagesimal",
    "read_pointing",
    "read_derotator",
    "read_timing",
    "irdis_wavelengths_nm",
    "nd_transmission",
    "lambda_over_d_px",
    "waffle_orientation_deg",
    "waffle_radius_px",
    "irdis_dead_zone_mask",
]

# --- Site ----------------------------------------------------------------------------------
# vlt-sphere sphere/__init__.py; identical to the real headers' TEL GEOLAT/GEOLON/GEOELEV.
PARANAL_LAT_DEG = -24.6268
PARANAL_LON_DEG = -70.4045  # east positive
PARANAL_HEIGHT_M = 2648.0

# Telescope diameter used for lambda/D (vlt-sphere; spherical uses 7.99 m, VIP 8.2 m).
TELESCOPE_DIAMETER_M = 8.0

# --- Astrometric calibration -----------------------------------------------------------------
# IRDIS plate scale for H2 (Maire 2016 abstract: 12.255 +- 0.009 mas/px; pyKLIP 0.012255").
# vlt-sphere's IRDIS.ini rounds it to 12.25.
IRDIS_PIXEL_SCALE_MAS = 12.255
IRDIS_PIXEL_SCALE_ERR_MAS = 0.009
# IFS plate scale (vlt-sphere IFS.ini; real header PIXSCAL = 7.46).
IFS_PIXEL_SCALE_MAS = 7.46

# Pupil offset in pupil-tracking (INS4 DROT2 MODE = ELEV), +- 0.11 deg (vlt-sphere).
PUPIL_OFFSET_DEG = 135.99
PUPIL_OFFSET_ERR_DEG = 0.11
# IFS instrument offset, +- 0.10 deg (vlt-sphere); IRDIS has 0. Also the pupil offset used in
# field/stationary derotator modes (SKY: -100.48 + POSANG, STAT: -100.48).
IFS_INSTRUMENT_OFFSET_DEG = -100.48
# True North correction, +- 0.08 deg (vlt-sphere >= 1.4 `cal_true_north`; pyKLIP IRDIS).
TRUE_NORTH_DEG = -1.75
TRUE_NORTH_ERR_DEG = 0.08
# Data taken before this date (UTC) need the derotator drift correction (avigan/SPHERE issue #1).
DEROTATOR_FIX_DATE = "2016-07-12T00:00:00"

# Anamorphism correction factors (x, y) by which images are stretched (vlt-sphere toolbox).
# IRDIS anamorphism is 0.60 +- 0.02 % (Maire 2016): vlt-sphere stretches y by 1.0062.
# Note: ESO's EDPS IRDIS FAQ quotes (1.0059, 1.0011) for IRDIS, which are vlt-sphere's IFS
# numbers; hcdc follows vlt-sphere (consistent with the 0.6 % of Maire 2016) for IRDIS.
IRDIS_ANAMORPHISM_XY = (1.0000, 1.0062)
IFS_ANAMORPHISM_XY = (1.0059, 1.0011)

# --- Waffle spots ----------------------------------------------------------------------------
# Spot distance from the star in lambda/D (vlt-sphere toolbox: 10 * sqrt(2) * 0.97 ~ 13.72).
WAFFLE_DISTANCE_LD = 10.0 * math.sqrt(2.0) * 0.97
# Orientation of the first spot (deg counter-clockwise from +x on the detector) for
# OCS WAFFLE ORIENT = '+'; 'x' adds 45 deg (vlt-sphere: IRDIS 0, IFS 102).
WAFFLE_ORIENTATION_OFFSET_DEG = {"IRDIS": 0.0, "IFS": 102.0}
# Fitting box around each spot (vlt-sphere config `center_box_waffle`).
WAFFLE_BOX_PX = 16

# --- Filters ---------------------------------------------------------------------------------
# IRDIS filter combinations (INS COMB IFLT): central wavelengths and bandwidths in nm for the
# (left, right) fields (vlt-sphere sphere/utils/transmission.py).
IRDIS_FILTER_COMBINATIONS: dict[str, dict[str, tuple[float, float]]] = {
    "BB_Y": {"wave_nm": (1043.0, 1043.0), "bandwidth_nm": (140.0, 140.0)},
    "BB_J": {"wave_nm": (1245.0, 1245.0), "bandwidth_nm": (240.0, 240.0)},
    "BB_H": {"wave_nm": (1625.0, 1625.0), "bandwidth_nm": (290.0, 290.0)},
    "BB_Ks": {"wave_nm": (2182.0, 2182.0), "bandwidth_nm": (300.0, 300.0)},
    "DB_Y23": {"wave_nm": (1022.0, 1076.0), "bandwidth_nm": (49.0, 50.0)},
    "DB_J23": {"wave_nm": (1190.0, 1273.0), "bandwidth_nm": (42.0, 46.0)},
    "DB_H23": {"wave_nm": (1593.0, 1667.0), "bandwidth_nm": (52.0, 54.0)},
    "DB_NDH23": {"wave_nm": (1593.0, 1667.0), "bandwidth_nm": (52.0, 54.0)},
    "DB_H34": {"wave_nm": (1667.0, 1733.0), "bandwidth_nm": (54.0, 57.0)},
    "DB_K12": {"wave_nm": (2110.0, 2251.0), "bandwidth_nm": (102.0, 109.0)},
    "NB_BrG": {"wave_nm": (2170.0, 2170.0), "bandwidth_nm": (31.0, 31.0)},
    "NB_CO": {"wave_nm": (2290.0, 2290.0), "bandwidth_nm": (33.0, 33.0)},
    "NB_CntH": {"wave_nm": (1573.0, 1573.0), "bandwidth_nm": (23.0, 23.0)},
    "NB_CntJ": {"wave_nm": (1213.0, 1213.0), "bandwidth_nm": (17.0, 17.0)},
    "NB_CntK1": {"wave_nm": (2091.0, 2091.0), "bandwidth_nm": (34.0, 34.0)},
    "NB_CntK2": {"wave_nm": (2266.0, 2266.0), "bandwidth_nm": (32.0, 32.0)},
    "NB_FeII": {"wave_nm": (1642.0, 1642.0), "bandwidth_nm": (24.0, 24.0)},
    "NB_H2": {"wave_nm": (2124.0, 2124.0), "bandwidth_nm": (31.0, 31.0)},
    "NB_HeI": {"wave_nm": (1085.0, 1085.0), "bandwidth_nm": (14.0, 14.0)},
    "NB_PaB": {"wave_nm": (1283.0, 1283.0), "bandwidth_nm": (18.0, 18.0)},
}
# DPI: INS COMB IFLT ``DP_0_<BB/NB>`` (polariser P0-90) and ``DP_45_<BB/NB>`` (P45-135) use the
# broad/narrow-band filter of the same name in both fields (sphere.md a.3; ESO archive form
# vocabulary of INS COMB IFLT/POLA in shared/data/sphere_headers/wdb_sphere_form_vocabularies.json).
IRDIS_FILTER_COMBINATIONS.update(
    {
        f"DP_{pol}_{name}": dict(entry)
        for pol in ("0", "45")
        for name, entry in list(IRDIS_FILTER_COMBINATIONS.items())
        if name.startswith(("BB_", "NB_"))
    }
)

# CPI near-infrared neutral densities (INS4 FILT2 NAME): transmission at 1593 nm and 2110 nm
# (vlt-sphere sphere/data/SPHERE_CPI_ND.txt, sampled at these two wavelengths in sphere.md).
ND_TRANSMISSION_WAVELENGTHS_NM = (1593.0, 2110.0)
ND_TRANSMISSION: dict[str, tuple[float, float]] = {
    "OPEN": (1.0, 1.0),
    "ND_1.0": (0.116, 0.148),
    "ND_2.0": (0.0122, 0.0221),
    "ND_3.5": (5.5e-4, 1.4e-3),
}

# --- IRDIS detector --------------------------------------------------------------------------
IRDIS_RAW_SHAPE = (1024, 2048)  # (rows, columns) of one raw DIT, both fields side by side
IRDIS_FIELD_WIDTH = 1024  # left field = columns [0, 1024), right field = [1024, 2048)
# Dead zones of the raw frame masked by vlt-sphere: rows < 15 and >= 1013; columns < 50,
# 941..1077 (inclusive) and >= 1966. Ranges are [start, stop) in 0-based pixels.
IRDIS_DEAD_ROWS: tuple[tuple[int, int], ...] = ((0, 15), (1013, 1024))
IRDIS_DEAD_COLUMNS: tuple[tuple[int, int], ...] = ((0, 50), (941, 1078), (1966, 2048))
# Default star-centre guesses (x, y) in each 1024x1024 field, left then right (vlt-sphere).
IRDIS_CENTER_GUESS_XY = ((485.0, 520.0), (486.0, 508.0))
IFS_CENTER_GUESS_XY = (145.0, 145.0)
# Gain: IRDIS 1.75 e-/ADU (IRDAP, User Manual P105); IFS 1.80 (real header DET CHIP1 GAIN).
IRDIS_GAIN_E_PER_ADU = 1.75
IFS_GAIN_E_PER_ADU = 1.80
# Dithering stage (INS1 PAC X/Y, micrometres) to pixels (vlt-sphere divides by 18 um/px).
IRDIS_PAC_UM_PER_PX = 18.0


# --- Header helpers --------------------------------------------------------------------------


def header_value(header: Mapping[str, Any], key: str, default: Any = ...) -> Any:
    """Value of ESO keyword ``key`` (written without ``HIERARCH``, e.g. ``"ESO DET NDIT"``).

    Works on an :class:`astropy.io.fits.Header` and on a plain mapping whose keys may or may not
    carry the ``HIERARCH`` prefix. Raises ``KeyError`` naming the keyword when absent and no
    ``default`` is given.
    """
    for candidate in (key, f"HIERARCH {key}"):
        try:
            if candidate in header:
                return header[candidate]
        except (KeyError, ValueError):  # astropy raises on some malformed lookups
            continue
    if default is ...:
        raise KeyError(f"header keyword {key!r} is missing")
    return default


def parse_packed_sexagesimal(value: float) -> float:
    """Decode ESO packed sexagesimal ``(+-)DDMMSS.sss`` / ``HHMMSS.sss`` into decimal units.

    ``124523.29766`` -> 12 + 45/60 + 23.29766/3600. The sign applies to the whole value
    (``-84656.8`` is -08:46:56.8).
    """
    value = float(value)
    sign = -1.0 if value < 0 else 1.0
    v = abs(value)
    units = math.floor(v / 10000.0)
    minutes = math.floor((v - units * 10000.0) / 100.0)
    seconds = v - units * 10000.0 - minutes * 100.0
    return sign * (units + minutes / 60.0 + seconds / 3600.0)


def read_pointing(header: Mapping[str, Any]) -> tuple[float, float]:
    """Apparent pointing ``(ra_deg, dec_deg)`` from ``INS4 DROT2 RA/DEC`` (packed sexagesimal).

    vlt-sphere computes parallactic angles from these (coordinates of date, matching the
    apparent sidereal time). Raises ``KeyError`` naming the missing keyword.
    """
    ra_h = parse_packed_sexagesimal(header_value(header, "ESO INS4 DROT2 RA"))
    dec_d = parse_packed_sexagesimal(header_value(header, "ESO INS4 DROT2 DEC"))
    return ra_h * 15.0, dec_d


@dataclass(frozen=True)
class DerotatorInfo:
    """IRDIS/IFS derotator state: mode (ELEV/SKY/STAT/OFF) and position angles in degrees."""

    mode: str
    begin_deg: float | None
    end_deg: float | None
    posang_deg: float | None


def read_derotator(header: Mapping[str, Any]) -> DerotatorInfo:
    """Read ``INS4 DROT2 MODE/BEGIN/END/POSANG``.

    ``INS4 DROT2 BEGIN`` was renamed ``INS4 DROT2 START`` in June 2021 (vlt-sphere commit
    a0ed837); both are accepted.
    """
    begin = header_value(header, "ESO INS4 DROT2 BEGIN", None)
    if begin is None:
        begin = header_value(header, "ESO INS4 DROT2 START", None)
    end = header_value(header, "ESO INS4 DROT2 END", None)
    posang = header_value(header, "ESO INS4 DROT2 POSANG", None)
    return DerotatorInfo(
        mode=str(header_value(header, "ESO INS4 DROT2 MODE")).strip(),
        begin_deg=None if begin is None else float(begin),
        end_deg=None if end is None else float(end),
        posang_deg=None if posang is None else float(posang),
    )


@dataclass(frozen=True)
class Timing:
    """Exposure timing of one raw file: ISO UTC strings and seconds."""

    date_obs: str  # DATE-OBS: start of the exposure sequence
    fram_utc: str  # DET FRAM UTC: file creation = end of the last DIT
    ndit: int
    dit: float  # DET SEQ1 DIT [s]
    ditdelay: float  # DET DITDELAY [s]


def read_timing(header: Mapping[str, Any]) -> Timing:
    """Read DATE-OBS, DET FRAM UTC, DET NDIT, DET SEQ1 DIT and DET DITDELAY (0 when absent)."""
    return Timing(
        date_obs=str(header_value(header, "DATE-OBS")).strip(),
        fram_utc=str(header_value(header, "ESO DET FRAM UTC")).strip(),
        ndit=int(header_value(header, "ESO DET NDIT")),
        dit=float(header_value(header, "ESO DET SEQ1 DIT")),
        ditdelay=float(header_value(header, "ESO DET DITDELAY", 0.0)),
    )


# --- Derived quantities ----------------------------------------------------------------------


def irdis_wavelengths_nm(filter_combination: str) -> tuple[float, float]:
    """Central wavelengths (nm) of the (left, right) IRDIS fields for ``INS COMB IFLT``."""
    try:
        return IRDIS_FILTER_COMBINATIONS[filter_combination]["wave_nm"]
    except KeyError:
        raise KeyError(
            f"unknown IRDIS filter combination {filter_combination!r}; "
            f"known: {', '.join(sorted(IRDIS_FILTER_COMBINATIONS))}"
        ) from None


def nd_transmission(nd_name: str, wavelength_nm: float) -> float:
    """CPI neutral-density transmission at ``wavelength_nm``.

    Linear interpolation between the two tabulated wavelengths (1593 and 2110 nm), held
    constant outside them (the table here has only those two samples; bluer bands use the
    1593 nm value).
    """
    name = nd_name.strip()
    if name not in ND_TRANSMISSION:
        raise KeyError(f"unknown neutral density {nd_name!r}; known: {', '.join(ND_TRANSMISSION)}")
    (w0, w1), (t0, t1) = ND_TRANSMISSION_WAVELENGTHS_NM, ND_TRANSMISSION[name]
    frac = min(max((wavelength_nm - w0) / (w1 - w0), 0.0), 1.0)
    return t0 + frac * (t1 - t0)


def lambda_over_d_px(wavelength_nm: float, pixel_scale_mas: float = IRDIS_PIXEL_SCALE_MAS) -> float:
    """lambda/D in pixels: (lambda / D_tel) [rad] * 206264.806e3 [mas/rad] / plate scale."""
    return wavelength_nm * 1e-9 / TELESCOPE_DIAMETER_M * 206264.806e3 / pixel_scale_mas


def waffle_orientation_deg(orient: str, arm: str = "IRDIS") -> float:
    """Angle (deg, counter-clockwise from +x) of the first waffle spot for ``OCS WAFFLE ORIENT``."""
    o = orient.strip()
    if o not in {"+", "x"}:
        raise ValueError(f"OCS WAFFLE ORIENT must be '+' or 'x', got {orient!r}")
    return WAFFLE_ORIENTATION_OFFSET_DEG[arm] + (45.0 if o == "x" else 0.0)


def waffle_radius_px(wavelength_nm: float, pixel_scale_mas: float = IRDIS_PIXEL_SCALE_MAS) -> float:
    """Distance (px) of the waffle spots from the star: 13.72 lambda/D."""
    return WAFFLE_DISTANCE_LD * lambda_over_d_px(wavelength_nm, pixel_scale_mas)


def irdis_dead_zone_mask() -> np.ndarray:
    """Boolean (1024, 2048) mask, True on the IRDIS dead zones of the raw frame (vlt-sphere)."""
    mask = np.zeros(IRDIS_RAW_SHAPE, dtype=bool)
    for start, stop in IRDIS_DEAD_ROWS:
        mask[start:stop, :] = True
    for start, stop in IRDIS_DEAD_COLUMNS:
        mask[:, start:stop] = True
    return mask
