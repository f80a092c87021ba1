"""A realistic SPHERE/IFS night built from the real headers (science + calibrations).

Science: the six real IFS frames of A124420 (OBJECT,CENTER, 4 x OBJECT, OBJECT,FLUX; mode
IFS-YJ, DIT 64 s, FLUX at 12 s) taken 2020-03-08 07:05-07:48 UTC. Calibrations: the two real
WAVE,LAMP frames (IFS-YJ at 16:53 and IFS-YJH at 16:55), plus frames derived from real headers
by changing only their DPR keywords, DIT and time: DARK,BACKGROUND at 64 s (same morning and,
farther, one day later), at 12 s, and the 1.65 s calibration DARK. No SPECPOS, IFU flat or
detector flats: those must be reported missing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from astropy.io import fits

from hcdc.archive.samples import TimeShiftTemplate

SCIENCE = (
    "SPHER.2020-03-08T07_05_15.511",
    "SPHER.2020-03-08T07_12_03.720",
    "SPHER.2020-03-08T07_20_53.733",
    "SPHER.2020-03-08T07_29_43.729",
    "SPHER.2020-03-08T07_38_33.715",
    "SPHER.2020-03-08T07_48_21.618",
)
WAVE_YJ = "SPHER.2020-03-08T16_53_05.173"
WAVE_YJH = "SPHER.2020-03-08T16_55_42.124"


def _calibration(header: fits.Header, dpr_type: str, tech: str, dit: float | None = None) -> fits.Header:
    out = header.copy()
    out["HIERARCH ESO DPR CATG"] = "CALIB"
    out["HIERARCH ESO DPR TYPE"] = dpr_type
    out["HIERARCH ESO DPR TECH"] = tech
    out["OBJECT"] = dpr_type
    if dit is not None:
        out["HIERARCH ESO DET SEQ1 DIT"] = dit
        out["EXPTIME"] = dit
    return out


def build_night(headers: dict[str, fits.Header], folder: Path) -> dict[str, Path]:
    """Write the night's files into ``folder``; returns them by role name."""
    files: dict[str, Path] = {}
    for name in SCIENCE:
        files[name] = TimeShiftTemplate(headers[name]).write(folder / f"{name}.fits")
    files["wave_yj"] = TimeShiftTemplate(headers[WAVE_YJ]).write(folder / f"{WAVE_YJ}.fits")
    files["wave_yjh"] = TimeShiftTemplate(headers[WAVE_YJH]).write(folder / f"{WAVE_YJH}.fits")
    science = headers["SPHER.2020-03-08T07_12_03.720"]
    derived = {
        "background_64": (_calibration(science, "DARK,BACKGROUND", "IMAGE"), dt.datetime(2020, 3, 8, 9, 30)),
        "background_64_next_day": (
            _calibration(science, "DARK,BACKGROUND", "IMAGE"),
            dt.datetime(2020, 3, 9, 9, 30),
        ),
        "background_12": (
            _calibration(science, "DARK,BACKGROUND", "IMAGE", dit=12.0),
            dt.datetime(2020, 3, 8, 9, 40),
        ),
        "calib_dark": (_calibration(headers[WAVE_YJ], "DARK", "IMAGE"), dt.datetime(2020, 3, 8, 16, 40)),
    }
    for role, (header, when) in derived.items():
        files[role] = TimeShiftTemplate(header).write(folder / f"{role}.fits", when)
    return files


def specpos_file(headers: dict[str, fits.Header], folder: Path) -> Path:
    """A SPECPOS,LAMP frame for IFS-YJ (derived from the real YJ wavelength calibration)."""
    header = _calibration(headers[WAVE_YJ], "SPECPOS,LAMP", "IFU")
    return TimeShiftTemplate(header).write(folder / "specpos.fits", dt.datetime(2020, 3, 8, 16, 45))
