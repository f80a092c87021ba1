"""Star centre per wavelength from the waffle spots of an extracted IFS CENTER cube, and the
spots' radial scaling with wavelength (the basis of the SPHERE DC's wavelength recalibration).

A 'medium' (1536^2) simulated night: its field holds the YJ spots (340-480 mas) in every channel.
Measured (seed 6): centres within 0.04 px of the truth in all 39 channels; spot distance /
(13.72 lambda/D) within 0.3 % (the first channel, at the filter edge, is the worst: +0.25 %).
"""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.ifs.extraction import (
    bad_pixel_map,
    calibrate_frame,
    calibrate_ifs,
    detector_flat,
    extract_cube,
    mean_frame,
    waffle_centers,
)
from hcdc.instruments.sphere.ifs.simulate import simulate_ifs_night


@pytest.fixture(scope="module")
def center_cube(tmp_path_factory):
    night = simulate_ifs_night(tmp_path_factory.mktemp("ifs_medium"), mode="YJ", seed=6, scale="medium")
    dark = mean_frame(night.select("DARK")[0].path)
    flat, flat_bad = detector_flat(
        mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=10.0)[0].path),
        mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=1.65)[0].path),
    )
    background = mean_frame(night.select("DARK,BACKGROUND", dit=64.0)[0].path)
    bad = bad_pixel_map(background, flat_bad)
    ifu = next(f for f in night.files if f.dpr_type == "FLAT,LAMP" and f.dpr_tech == "IFU")
    frames = (night.select("SPECPOS,LAMP")[0], night.select("WAVE,LAMP")[0], ifu)
    calibration = calibrate_ifs(*(calibrate_frame(mean_frame(f.path), dark, flat, bad) for f in frames), "YJ")
    center = night.select("OBJECT,CENTER")[0]
    image = calibrate_frame(mean_frame(center.path), background, flat, bad) / center.dit
    return night, calibration, center, extract_cube(image, calibration)


def test_star_centre_per_wavelength_from_the_waffle_spots(center_cube) -> None:
    night, calibration, center, cube = center_cube
    assert cube.shape == (39, 219, 219)
    waves = calibration.wavelengths_nm
    centres, errors, radii = waffle_centers(cube, waves, "x")
    truth = cube.shape[-1] // 2 + np.mean(center.star_xy_mas, axis=0) / sc.IFS_PIXEL_SCALE_MAS
    distance = np.hypot(*(centres - truth).T)
    assert np.all(distance < 0.1), np.round(distance, 3)  # the bound, every channel
    assert np.all(errors < 0.3)  # the fits' own error estimates are finite and honest
    # spot distance = 13.72 lambda/D in every channel: the wavelengths are right
    expected = sc.waffle_radius_px(waves, sc.IFS_PIXEL_SCALE_MAS)
    np.testing.assert_allclose(radii / expected, 1.0, atol=3e-3)
    # a wavelength recalibration from the spots (distance proportional to lambda, scale fitted
    # over all channels) finds every channel within 0.3 % of its wavelength
    scale = np.sum(radii * waves) / np.sum(waves**2)
    np.testing.assert_allclose(radii / scale, waves, rtol=3e-3)
