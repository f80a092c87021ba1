"""Star position of a cube brought in, the 0.3 px check and --recenter (hcdc.science.calibration.recenter)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from hcdc.science import geometry
from hcdc.science.calibration.recenter import check_cube_star, measure_star, recenter_cube
from hcdc.science.postprocessing import pca
from hcdc.science.postprocessing.detection import fit_gaussian_2d
from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.photometry import aperture_sums, normalize_psf
from hcdc.science.simulation.adi import simulate_adi_cube

FWHM = 4.0


def _star_cube(sign: float, offsets: np.ndarray, seed: int = 1) -> np.ndarray:
    """Speckle cube plus a stellar peak (sign +1) or a dark hole (-1) shifted by ``offsets`` (dy, dx)."""
    sim = simulate_adi_cube(n_frames=len(offsets), size=65, fwhm=FWHM, companions=[], seed=seed)
    delta = np.zeros((65, 65))
    delta[32, 32] = 1.0
    star = ndimage.gaussian_filter(delta, FWHM / 2.3548)
    star *= 30.0 * float(sim.cube.max()) / star.max()
    return np.stack(
        [sign * geometry.shift_frame(star, dy, dx) + f for (dy, dx), f in zip(offsets, sim.cube, strict=True)]
    )


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["stellar peak", "dark hole"])
def test_known_offsets_are_measured_and_removed(sign):
    rng = np.random.default_rng(3)
    offsets = np.column_stack([0.6 + rng.normal(0, 0.1, 12), -0.4 + rng.normal(0, 0.1, 12)])
    cube = _star_cube(sign, offsets)
    position = measure_star(cube, FWHM, every_frame=True)
    assert position.method == ("psf" if sign > 0 else "negative-gaussian")
    dx, dy = position.offset
    assert dx == pytest.approx(np.median(offsets[:, 1]), abs=0.1)
    assert dy == pytest.approx(np.median(offsets[:, 0]), abs=0.1)
    per_frame = np.hypot(position.x - 32 - offsets[:, 1], position.y - 32 - offsets[:, 0])
    assert per_frame.max() < 0.05
    fixed, notes = check_cube_star(cube, FWHM, "cube test.fits", recenter=True)
    assert notes[0][0] == "note" and "recentred" in notes[0][1]
    assert measure_star(fixed, FWHM).distance < 0.1
    # The check alone warns, naming the file and the fix.
    _, notes = check_cube_star(cube, FWHM, "cube test.fits")
    assert notes[0][0] == "warning" and "cube test.fits" in notes[0][1] and "--recenter" in notes[0][1]


def test_centred_and_unmeasurable_cubes_give_no_warning():
    centred = _star_cube(1.0, np.zeros((8, 2)))
    assert check_cube_star(centred, FWHM, "c")[1] == [("note", "c: star within 0.3 px of the centre")]
    # Speckles only (no star signal at the centre): not measurable, said so, no false warning.
    for seed in range(4):
        sim = simulate_adi_cube(n_frames=20, size=101, fwhm=FWHM, companions=[], seed=seed)
        ((level, text),) = check_cube_star(sim.cube, FWHM, "s")[1]
        assert level == "note" and "not checked" in text
    with pytest.raises(ValueError, match="s: cannot recentre"):
        check_cube_star(sim.cube, FWHM, "s", recenter=True)


@pytest.mark.shared_data
def test_naco_star_offset_and_the_cost_of_ignoring_it(shared_data):
    """VIP's NACO beta Pic cube has its AGPM dark hole ~1 px off (50, 50). Fakes injected around
    the true star come out displaced and too faint without recentring, as in the ideal
    (perfectly centred) case with it."""
    folder = shared_data / "naco_betapic"
    cube = fits.getdata(folder / "naco_betapic_cube.fits").astype(np.float32)
    pa = fits.getdata(folder / "naco_betapic_pa.fits").astype(np.float64).ravel()
    psf = fits.getdata(folder / "naco_betapic_psf.fits").astype(np.float64)
    c = psf.shape[0] // 2
    g = fit_gaussian_2d(psf, c, c, box=9, fwhm=4.6)
    psf = normalize_psf(geometry.shift_frame(psf, c - g.y, c - g.x), 4.6, size=19)

    position = measure_star(cube, 4.6, every_frame=True)
    assert position.method == "negative-gaussian"
    assert position.offset == pytest.approx((0.99, 1.01), abs=0.05)  # VIP tutorials: ~1 px
    assert position.scatter < 0.1
    cy, cx = geometry.frame_center(cube.shape)
    centred = recenter_cube(cube, position)
    derot = -pa  # VIP angle_list -> hcdc derotation angles

    def reduce(data: np.ndarray) -> np.ndarray:
        return pca.pca(data, derot, fwhm=4.6, ncomp=10)

    base_raw, base_centred = reduce(cube), reduce(centred)
    for sep in (10.0, 20.0):
        fake = inject_companions(np.zeros_like(cube), derot, psf, sep, 135.0, 3e3 * (20 / sep) ** 2)
        x, y = geometry.polar_to_pixel(sep, 135.0, cube.shape)
        ideal = reduce(centred + fake) - base_centred
        observed = cube + geometry.shift_frames(fake, position.y - cy, position.x - cx)
        raw = reduce(observed) - base_raw
        fixed = reduce(check_cube_star(observed, 4.6, "naco", recenter=True)[0]) - base_centred
        fits_ = {
            k: fit_gaussian_2d(img, x, y, box=9, fwhm=4.6)
            for k, img in (("ideal", ideal), ("raw", raw), ("fixed", fixed))
        }
        flux = {
            k: aperture_sums(img, np.array([fits_[k].x]), np.array([fits_[k].y]), 2.3)[0]
            for k, img in (("ideal", ideal), ("raw", raw), ("fixed", fixed))
        }

        shift = {
            k: math.hypot(fits_[k].x - fits_["ideal"].x, fits_[k].y - fits_["ideal"].y)
            for k in ("raw", "fixed")
        }
        assert shift["raw"] > 0.5 and shift["fixed"] < 0.1
        assert abs(flux["fixed"] / flux["ideal"] - 1) < 0.05
        if sep == 10.0:
            assert flux["raw"] / flux["ideal"] < 0.8  # measured: -36 % at 10 px


def test_median_of_picked_frames_in_bands_equals_nanmedian_of_the_stack():
    """The star check's median frame, read in bands of rows (bounded memory on a memory-mapped
    cube), is the float64 nanmedian of the picked frames' stack, NaN included, to the bit."""
    import warnings

    from hcdc.science.calibration.recenter import _median_of_frames

    rng = np.random.default_rng(3)
    cube = rng.standard_normal((30, 41, 37)).astype(">f4")  # big-endian, as FITS
    cube[4, 6, 7] = np.nan
    cube[:, 2, 2] = np.nan  # an all-NaN pixel stays NaN
    for picks in (np.arange(0, 30, 3), np.array([0, 5, 6, 29])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(np.asarray(cube[picks], dtype=np.float64), axis=0)
            for band_bytes in (1, 8 * len(picks) * 37 * 4, 1 << 26):  # 1 row, 4 rows, all rows
                got = _median_of_frames(cube, picks, band_bytes)
                np.testing.assert_array_equal(got, expected)
