"""Simulated CHARA/MIRC-X raw files for Level 0 tests: small frame cubes with the raw keywords
of :mod:`hcdc.instruments.mircx` (no real raw file is public).

Only keywords the public pipeline is known to read are written, with values of the forms it
parses; those whose value format is not known from a public source (``FILTER1``/``FILTER2``,
``CROPROWS``/``CROPCOLS``, the ``HIERARCH CHARA <tel>_BASELINE_*`` positions, ``U_``/``V_``)
are left out rather than invented. The frames are noise around a bias (int16): they exercise
ingest and the observation log, not a reduction.

MYSTIC (``MircxSetup.combiner = "MYSTIC"``, the K-band combiner that shares MIRC-X's pipeline):
the same keywords plus ``INSTRUME = 'MYSTIC'`` and ``BEAMCOMB = 'MYSTIC'`` and the four the
pipeline reads for MYSTIC's wavelength scale, ``WAVELEN`` (central wavelength, µm), ``BANDWID``
(µm) and the fringe-window rows ``FR_ROW1``/``FR_ROW2`` (jdmonnier/mircx_mystic commit 6dc740e:
``setup.py`` ``lbd0`` and ``beam_freq`` test ``hdr['BEAMCOMB'] == 'MYSTIC'``; ``files.py``
names ``INSTRUME`` 'MIRC-X' and 'MYSTIC'). The default MIRC-X night is unchanged (no INSTRUME,
no BEAMCOMB: the keywords it had before these were found).

A night is the pipeline's usual sequence: BACKGROUND, the six BEAMi_MAP shutter files,
FOREGROUND, then ``n_data`` DATA files on the target, consecutive in time with contiguous frame
counters.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from hcdc.instruments.base import datetime_to_mjd
from hcdc.instruments.mircx import TEL_KEY


@dataclass(frozen=True)
class MircxSetup:
    """Detector and instrument setup (keyword values; ``exposure_ms`` is EXPOSURE)."""

    conf_na: str = "H_PRISM50"
    exposure_ms: float = 4.0
    gain: int = 50
    nloops: int = 1
    nreads: int = 4
    nbin: int = 1
    frmprst: int = 1
    frames: int = 16  # frames per file
    rows: int = 8
    cols: int = 64
    beam_order: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # BEAMORD0..5: CHARA beam of each MIRC beam
    combiner: str = "MIRC-X"  # or "MYSTIC": writes INSTRUME, BEAMCOMB, WAVELEN, BANDWID, FR_ROW1/2
    wavelength_um: float = 2.2  # MYSTIC: WAVELEN, central wavelength (K band)
    bandwidth_um: float = 0.3  # MYSTIC: BANDWID


def raw_header(
    filetype: str, target: str, start: dt.datetime, first_frame: int, setup: MircxSetup
) -> fits.Header:
    """The primary header of one raw file starting at ``start`` (naive UTC)."""
    rate = 1000.0 / setup.exposure_ms
    unix = calendar.timegm(start.timetuple()) + start.microsecond / 1e6
    header = fits.Header()
    header["FILETYPE"] = (filetype, "raw file type")
    header["OBJECT"] = target
    header["DATE-OBS"] = (start.strftime("%Y-%m-%d"), "UTC date (GPS)")
    header["UTC-OBS"] = (start.strftime("%H:%M:%S.") + f"{start.microsecond // 1000:03d}", "UTC time (GPS)")
    header["TIME_S"] = (int(unix), "Linux time, s")
    header["TIME_US"] = (int(round((unix - int(unix)) * 1e9)), "Linux time, ns (sic)")
    header["MJD-OBS"] = (datetime_to_mjd(start), "[mjd] Observing time")
    header["EXPOSURE"] = (setup.exposure_ms, "ms")
    header["HIERARCH MIRC FRAME_RATE"] = (rate, "Hz")
    header["STARTFR"] = first_frame
    header["LASTFR"] = first_frame + setup.frames - 1
    for key in ("nbin", "nreads", "nloops", "gain", "frmprst"):
        header[key.upper()] = getattr(setup, key)
    header["CONF_NA"] = (setup.conf_na, "spectral setup")
    for i, beam in enumerate(setup.beam_order):
        header[f"BEAMORD{i}"] = beam
    header["TEL_KEY"] = TEL_KEY
    if setup.combiner == "MYSTIC":
        header["INSTRUME"] = ("MYSTIC", "instrument")
        header["BEAMCOMB"] = ("MYSTIC", "beam combiner")
        header["WAVELEN"] = (setup.wavelength_um, "[um] central wavelength")
        header["BANDWID"] = (setup.bandwidth_um, "[um] bandwidth")
        header["FR_ROW1"] = (1, "first row of the fringe window")
        header["FR_ROW2"] = (setup.rows, "last row of the fringe window")
    elif setup.combiner != "MIRC-X":
        raise ValueError(f"combiner must be MIRC-X or MYSTIC, not {setup.combiner!r}")
    return header


def simulate_night(
    out_dir: str | Path,
    target: str,
    start: dt.datetime,
    *,
    n_data: int = 4,
    setup: MircxSetup = MircxSetup(),
    seed: int = 0,
) -> list[Path]:
    """Write one night's raw files ``mircxNNNNN.fits`` into ``out_dir``; returns their paths
    in time order. ``start``: naive UTC of the first file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sequence = ["BACKGROUND", *(f"BEAM{i}_MAP" for i in range(1, 7)), "FOREGROUND", *["DATA"] * n_data]
    file_seconds = setup.frames * setup.exposure_ms / 1000.0
    paths = []
    frame = 1
    when = start
    for number, filetype in enumerate(sequence, start=1):
        header = raw_header(filetype, target, when, frame, setup)
        frames = (1000 + rng.normal(0, 10, (setup.frames, setup.rows, setup.cols))).astype(np.int16)
        path = out / f"mircx{number:05d}.fits"  # the pipeline's name for both combiners
        fits.PrimaryHDU(frames, header).writeto(path, overwrite=True)
        paths.append(path)
        frame += setup.frames
        when += dt.timedelta(seconds=file_seconds + 30.0)  # a gap between files
    return paths
