"""Per-channel 5-sigma contrast curves of spectral algorithms (``contrast_options={'per_wavelength':
True}``, the IFS Level 2 default): every wavelength's row is the limit of that channel's own image.

Honest-limit check in the style of test_sdi_contrast.py: companions of flat contrast injected at
channel ``w``'s reported limit (by the tests' own injection code, conftest.count_recoveries) are
found in channel ``w``'s image by hcdc's detection about half the time, and nearly always at twice
the limit; the final image's limit (what every row held before) is not channel ``w``'s limit.
"""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.postprocessing import get_algorithm
from hcdc.science.postprocessing.products import read_product, write_product
from hcdc.science.postprocessing.run import postprocess
from hcdc.science.simulation.adi import simulate_spectral_cube

pytestmark = pytest.mark.filterwarnings("ignore:SDI. fewer than:UserWarning")


@pytest.fixture(scope="module")
def empty_sky():
    """An IFS-like sequence (5 channels 1.0-1.6 µm, 20 frames, 40 deg of rotation), no companion."""
    return simulate_spectral_cube(
        wavelengths=(1.0, 1.15, 1.3, 1.45, 1.6), n_frames=20, size=81, fwhm_ref=3.5, seed=7
    )


@pytest.fixture(scope="module")
def both_curves(empty_sky):
    sim = empty_sky
    common = {
        "algorithm": "sdi",
        "psf": sim.psf,
        "wavelengths": sim.wavelengths,
        "fwhm": sim.fwhm,
        "star_flux": sim.star_flux,
    }
    per = postprocess(sim.cube, sim.angles, contrast_options={"per_wavelength": True}, **common)
    final = postprocess(sim.cube, sim.angles, **common)
    return per, final


def test_per_channel_rows_are_each_channels_own_limit(both_curves, tmp_path) -> None:
    per, final = both_curves
    assert per.contrast.per_wavelength and not final.contrast.per_wavelength
    assert per.contrast.n_wavelengths == 5
    fwhm = float(per.fwhm)  # the final image's: the mean over the channels
    seps = fwhm * np.array([3.0, 4.0, 5.0])  # (the bluest channel's throughput is < 2 % at 6 FWHM)
    rows = np.array([[per.contrast.at(s, wavelength_index=w) for s in seps] for w in range(5)])
    finals = np.array([[final.contrast.at(s, wavelength_index=w) for s in seps] for w in range(5)])
    assert np.isfinite(rows).all() and np.isfinite(finals).all(), (rows, finals)
    # the final image's limit is the same in every row; each channel's own limit is not
    np.testing.assert_allclose(finals, finals[:1].repeat(5, axis=0))
    assert np.ptp(np.log10(rows), axis=0).min() > 0.1, rows  # channels differ by > 25 %
    # stored as the FITS table with units and read back with the flag
    path = write_product(per, tmp_path / "l2.fits")
    back = read_product(path)
    assert back.contrast.per_wavelength
    np.testing.assert_allclose(back.contrast.contrast, per.contrast.contrast)
    from astropy.io import fits

    with fits.open(path) as hdul:
        table = hdul["CONTRAST"]
        assert table.header["PERWAVE"] is True and table.header["NWAVE"] == 5
        assert table.columns["SEP_MAS"].unit == "mas" and table.columns["SEP_PX"].unit == "pix"
        assert abs(table.header["WAVE4"] - 1.6) < 1e-9
    assert per.contrast.description()["per_wavelength"] is True
    assert "per_wavelength" not in final.contrast.description()  # old products' summaries unchanged


def test_per_wavelength_option_is_checked(empty_sky) -> None:
    sim = empty_sky
    with pytest.raises(ValueError, match="per_wavelength must be true or false"):
        postprocess(
            sim.cube,
            sim.angles,
            algorithm="sdi",
            psf=sim.psf,
            wavelengths=sim.wavelengths,
            contrast_options={"per_wavelength": "yes"},
        )


@pytest.mark.slow
def test_companions_at_a_channels_limit_are_found_in_it_about_half_the_time(
    empty_sky, both_curves, count_recoveries
) -> None:
    sim = empty_sky
    per, final = both_curves
    fwhm_w = np.asarray(sim.fwhm, dtype=np.float64)
    sdi = get_algorithm("sdi").function
    seps = fwhm_w.mean() * np.array([3.0, 4.0, 5.0])
    results = {}
    for w in (0, 4):  # the bluest and the reddest channel

        def reduce(cube, w=w):
            return sdi(cube, sim.angles, fwhm=fwhm_w, wavelengths=sim.wavelengths)[1][w]

        limits = np.array([per.contrast.at(s, wavelength_index=w) for s in seps])
        assert np.all(np.isfinite(limits)), limits
        flat = limits[:, None] * np.asarray(sim.star_flux)[None, :]  # flat contrast, all channels
        n_pa = 12
        hits = count_recoveries(
            sim.cube,
            sim.angles,
            sim.psf,
            reduce,
            fwhm=float(fwhm_w[w]),
            separations=seps,
            fluxes=flat,
            n_pa=n_pa,
        )
        bright = count_recoveries(
            sim.cube,
            sim.angles,
            sim.psf,
            reduce,
            fwhm=float(fwhm_w[w]),
            separations=seps,
            fluxes=2.0 * flat,
            n_pa=6,
        )
        results[w] = (hits / n_pa, bright / 6)
    # measured (3, 4, 5 FWHM): channel 0 67/50/67 %, twice 100/100/83 %; channel 4 50/83/50 %,
    # twice 100 % (docs/ifs.md 4.1)
    for w, (half, twice) in results.items():
        assert 0.25 <= half.mean() <= 0.8, (w, half)
        assert twice.mean() >= 0.8, (w, twice)
    # what every row held before (the final image's limit) is far too faint for the red channel
    # alone: found 0 % of the time there (measured)
    old_rows = np.array([final.contrast.at(s, wavelength_index=4) for s in seps])
    missed = count_recoveries(
        sim.cube,
        sim.angles,
        sim.psf,
        lambda cube: sdi(cube, sim.angles, fwhm=fwhm_w, wavelengths=sim.wavelengths)[1][4],
        fwhm=float(fwhm_w[4]),
        separations=seps,
        fluxes=old_rows[:, None] * np.asarray(sim.star_flux)[None, :],
        n_pa=12,
    )
    assert missed.mean() / 12 <= 0.2, missed
