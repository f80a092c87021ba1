"""The band-edge spectral response of ``level1-ifs`` 0.5, against the simulator's truth.

The order-sorting filter cuts each micro-spectrum 1 px beyond its first and last channel and the
spectral PSF (sigma 0.85 px) spreads that cut over them: those channels receive ~16 % less light.
The IFU flat (a white lamp seen through the same filter) shows the same loss; until 0.4 its
spectrum was normalised channel by channel (the lenslet response), which removed it, so the
Level 1 PSF flux came back 0.81-0.84 of the truth in the edge channels. 0.5 divides the spectra by
the IFU flat's median spectrum relative to its smooth continuum
(:func:`hcdc.science.calibration.ifs.band_response`).

Known answer (small YJ night with cross-talk, seed 0, the workflow's night): the OBJECT,FLUX
frames reduced to the PSF cube as Level 1 does, each channel's flux in the 31 px box compared
with the simulator's focal plane integrated over the same box (star, AO halo, speckles, without
the neutral density). Measured (mean of the 2 DITs): with the band response every channel
0.951-1.089 of the truth (edge channels 0, 1, 37, 38: 1.005, 0.984, 1.011, 0.972); without it
channels 0 and 38 are 0.839 and 0.810. The channel-to-channel scatter (+-5 %, 0.64 correlated
between the two DITs) is the lenslet grid's sampling of the core (~2 lenslets per lambda/D at
1 um) and the photon and read noise, not the band edge. Response: 0.835 / 0.834 in channels 0 /
38, 0.982 / 0.964 in 1 / 37, within 0.1 % of 1 elsewhere.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from astropy.time import Time

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.ifs import geometry as geo
from hcdc.instruments.sphere.ifs.extraction import (
    bad_pixel_map,
    calibrate_frame,
    calibrate_ifs,
    detector_flat,
    mean_frame,
)
from hcdc.instruments.sphere.ifs.sequence import PSF_SIZE_PX, reduce_flux
from hcdc.instruments.sphere.ifs.simulate import science_scene, simulate_ifs_night
from hcdc.science.calibration import ifs as cal
from hcdc.science.simulation import ifs as ifsim
from hcdc.science.simulation.speckles import NACO_LIKE_ENVELOPE, make_evolving_speckles


def test_band_response_is_the_ratio_to_a_smooth_continuum() -> None:
    waves = np.linspace(960.0, 1350.0, 39)
    continuum = 500.0 + 0.3 * (waves - 960.0) - 2e-4 * (waves - 1100.0) ** 2
    edge = np.ones(39)
    edge[[0, 1, -2, -1]] = (0.8, 0.97, 0.96, 0.82)
    interior = np.zeros(39, dtype=bool)
    interior[4:-4] = True
    resp = cal.band_response(continuum * edge, waves, interior)
    np.testing.assert_allclose(resp, edge, rtol=1e-9)
    with pytest.raises(ValueError, match="usable interior channels"):
        cal.band_response(continuum, waves, np.arange(39) < 3)


def _box_truth(truth: dict, waves: np.ndarray, half: int) -> np.ndarray:
    """The simulated focal plane of each OBJECT,FLUX DIT (no neutral density) summed over the
    PSF box around the star at the cube sampling: (dits, 39) in ADU/s/nm."""
    r_env, levels = NACO_LIKE_ENVELOPE
    level = truth["speckle_level"]
    speckles = make_evolving_speckles(
        np.random.default_rng(truth["speckle_seed"]),
        envelope=(r_env, tuple(max(v * level, 1e-300) for v in levels)),
    )
    t_ref = Time(truth["files"][0]["date_obs"], scale="utc")  # the plan's first file
    grid = np.arange(-half, half + 1) * sc.IFS_PIXEL_SCALE_MAS
    xx, yy = np.meshgrid(grid, grid)
    out = []
    for f in truth["files"]:
        if f["dpr_type"] != "OBJECT,FLUX":
            continue
        for k, mjd in enumerate(f["mjd_mid"]):
            star = tuple(f["star_xy_mas"][k])
            t_s = (Time(mjd, format="mjd", scale="utc") - t_ref).to_value("s")
            scene = science_scene("flux", (), star, f["derot_deg"][k], t_s, "OPEN", speckles)
            points = np.column_stack((xx.ravel() + star[0], yy.ravel() + star[1]))
            out.append(ifsim.lenslet_spectra(scene, points, waves, sc.IFS_PIXEL_SCALE_MAS**2).sum(axis=0))
    return np.asarray(out)


@pytest.mark.slow
def test_level1_psf_flux_per_channel_with_the_band_response(tmp_path) -> None:
    night = simulate_ifs_night(tmp_path / "raw", mode="YJ", seed=0, scale="small")
    files = {}
    for f in night.files:
        files.setdefault((f.dpr_type, f.dpr_tech, f.lamp, round(f.dit, 2)), []).append(f.path)
    calib_dark = mean_frame(files[("DARK", "IMAGE", None, 1.65)][0])
    flat, flat_bad = detector_flat(
        mean_frame(files[("FLAT,LAMP", "IMAGE", "BB", 10.0)][0]),
        mean_frame(files[("FLAT,LAMP", "IMAGE", "BB", 1.65)][0]),
    )
    backgrounds = {4.0: mean_frame(files[("DARK,BACKGROUND", "IMAGE", None, 4.0)][0])}
    bad = bad_pixel_map(backgrounds[4.0], flat_bad)
    xtalk = geo.CROSSTALK

    def frame(key: tuple) -> np.ndarray:
        return calibrate_frame(mean_frame(files[key][0]), calib_dark, flat, bad, xtalk)

    calibration = calibrate_ifs(
        frame(("SPECPOS,LAMP", "IFU", None, 1.65)),
        frame(("WAVE,LAMP", "IFU", None, 1.65)),
        frame(("FLAT,LAMP", "IFU", None, 1.65)),
        "YJ",
        band_response=True,
    )
    resp = calibration.band_response
    assert resp is not None and resp.shape == (39,)
    # measured 0.835 / 0.834 at the ends, 0.982 / 0.964 next to them, within 0.1 % of 1 inside
    assert 0.80 < resp[0] < 0.87 and 0.80 < resp[-1] < 0.87
    np.testing.assert_allclose(resp[3:-3], 1.0, atol=3e-3)

    flux_paths = files[("OBJECT,FLUX", "IFU", None, 4.0)]
    truth = _box_truth(json.loads(night.truth_json.read_text()), night.wavelengths_nm, PSF_SIZE_PX // 2)

    def ratio(calib) -> np.ndarray:
        psf = reduce_flux(flux_paths, calib, backgrounds.__getitem__, flat, bad, True, crosstalk=xtalk)
        return (psf.cube.sum(axis=(2, 3)).T / truth).mean(axis=0)

    with_response = ratio(calibration)
    without = ratio(dataclasses.replace(calibration, band_response=None))
    # every channel (measured 0.951-1.089), the edge channels closer (0.972-1.011)
    assert np.all((with_response > 0.92) & (with_response < 1.12)), np.round(with_response, 3)
    edges = with_response[[0, 1, -2, -1]]
    assert np.all(np.abs(edges - 1.0) < 0.05), np.round(edges, 3)
    # without the band response (0.4): the edge channels lose the filter's cut (0.839, 0.810)
    assert without[0] < 0.88 and without[-1] < 0.88, np.round(without, 3)
    np.testing.assert_allclose(with_response[3:-3], without[3:-3], rtol=2e-3)
