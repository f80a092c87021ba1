"""A simulated IFS night's first CENTER frame as a spectral cube, calibrated as ``level1-ifs``
does (master dark, detector flat and bad pixels, spectra positions and wavelengths from the
lamps, the cross-talk corrected), for the tests of star centring on IFS cubes."""

from __future__ import annotations

from typing import Any

import numpy as np

from hcdc.instruments.sphere.ifs import geometry as geo
from hcdc.instruments.sphere.ifs.extraction import (
    bad_pixel_map,
    calibrate_frame,
    calibrate_ifs,
    detector_flat,
    extract_cube,
    mean_frame,
)


def calibrated_center_cube(
    night: Any,
) -> tuple[Any, Any, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(calibration, center_file, cube, (background, flat, bad))`` of a YJ ``night``
    (:func:`hcdc.instruments.sphere.ifs.simulate.simulate_ifs_night`): the cube is the CENTER
    frame in ADU/s, (wavelengths, y, x)."""
    dark = mean_frame(night.select("DARK")[0].path)
    flat, flat_bad = detector_flat(
        mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=10.0)[0].path),
        mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=1.65)[0].path),
    )
    background = mean_frame(night.select("DARK,BACKGROUND", dit=64.0)[0].path)
    bad = bad_pixel_map(background, flat_bad)
    ifu = next(f for f in night.files if f.dpr_type == "FLAT,LAMP" and f.dpr_tech == "IFU")
    frames = (night.select("SPECPOS,LAMP")[0], night.select("WAVE,LAMP")[0], ifu)
    xtalk = geo.CROSSTALK
    calibration = calibrate_ifs(
        *(calibrate_frame(mean_frame(f.path), dark, flat, bad, xtalk) for f in frames), "YJ"
    )
    center = night.select("OBJECT,CENTER")[0]
    image = calibrate_frame(mean_frame(center.path), background, flat, bad, xtalk) / center.dit
    return calibration, center, extract_cube(image, calibration), (background, flat, bad)
