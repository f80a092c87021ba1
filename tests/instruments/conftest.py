"""Fixtures for the instrument tests: FITS files built from the real SPHERE IFS headers.

The 8 header dumps in ../shared/data/sphere_headers are parsed with
:func:`hcdc.instruments.eso_headers.read_header_text` and written as FITS files with a small
data cube (the real header, a 2x4x4 float32 array) so that :func:`read_file` sees them as it
would see the raw files. Derived headers (IRDIS, ZIMPOL, SPARTA, NACO, calibrations) are
edited copies of these real headers; each test says where the edited values come from.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.base import datetime_to_mjd
from hcdc.instruments.eso_headers import read_header_text

# name (file stem) -> short description, as in sphere_headers/README.md
REAL_FILES = (
    "SPHER.2020-03-08T07_05_15.511",  # OBJECT,CENTER 64 s x 6
    "SPHER.2020-03-08T07_12_03.720",  # OBJECT 64 s x 8
    "SPHER.2020-03-08T07_20_53.733",  # OBJECT
    "SPHER.2020-03-08T07_29_43.729",  # OBJECT
    "SPHER.2020-03-08T07_38_33.715",  # OBJECT
    "SPHER.2020-03-08T07_48_21.618",  # OBJECT,FLUX 12 s x 10
    "SPHER.2020-03-08T16_53_05.173",  # WAVE,LAMP YJ
    "SPHER.2020-03-08T16_55_42.124",  # WAVE,LAMP YJH (OBS_H)
)
SCIENCE_FILES = REAL_FILES[:6]
WAVE_YJ, WAVE_YJH = REAL_FILES[6], REAL_FILES[7]


def eso(key: str) -> str:
    return "HIERARCH ESO " + key


def write_fits(path: Path, header: fits.Header, data: np.ndarray | None = None) -> Path:
    """Write ``header`` with a small data cube (default 2x4x4 float32) as a FITS file."""
    if data is None:
        data = np.zeros((2, 4, 4), dtype=np.float32)
    hdu = fits.PrimaryHDU(data=data, header=header.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu.writeto(path, overwrite=True, output_verify="silentfix")
    return path


def edited(header: fits.Header, changes: dict[str, Any], remove: tuple[str, ...] = ()) -> fits.Header:
    """Copy of ``header`` with ESO keywords (given as ``'DPR TYPE'``, or plain FITS names)
    set or removed."""
    out = header.copy()
    for key in remove:
        full = key if key in out else eso(key)
        if full in out:
            del out[full]
    for key, value in changes.items():
        full = key if (key.isupper() and " " not in key) else eso(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[full] = value
    return out


def set_time(header: fits.Header, when: dt.datetime) -> fits.Header:
    """Copy of ``header`` observed at ``when`` (DATE-OBS and MJD-OBS rewritten together)."""
    return edited(
        header, {"DATE-OBS": when.isoformat(timespec="milliseconds"), "MJD-OBS": datetime_to_mjd(when)}
    )


@pytest.fixture(scope="session")
def real_headers(shared_data: Path) -> dict[str, fits.Header]:
    """The 8 real SPHERE IFS primary headers, by file stem."""
    folder = shared_data / "sphere_headers"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: read_header_text(folder / f"{name}.hdr.txt") for name in REAL_FILES}


@pytest.fixture(scope="session")
def real_fits(
    real_headers: dict[str, fits.Header], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """FITS files (real header + 2x4x4 data) built once per session, by file stem."""
    folder = tmp_path_factory.mktemp("sphere_real")
    return {name: write_fits(folder / f"{name}.fits", header) for name, header in real_headers.items()}


@pytest.fixture
def make_fits(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a header to ``tmp_path/<name>.fits``."""

    def _make(name: str, header: fits.Header, data: np.ndarray | None = None) -> Path:
        return write_fits(tmp_path / f"{name}.fits", header, data)

    return _make
