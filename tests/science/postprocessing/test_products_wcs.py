"""Level 2 products read correctly by other tools: celestial WCS, BUNIT, long cards, orientation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from hcdc.science import geometry
from hcdc.science.fits_cards import set_card
from hcdc.science.orientation import Orientation
from hcdc.science.postprocessing.products import Detection, PostprocessResult, read_product, write_product

TARGET = (86.82119, -51.06651)  # beta Pic, deg
SCALE = 27.19  # mas/px


def _result(orientation: Orientation, **kwargs) -> PostprocessResult:
    image = np.zeros((101, 101), np.float32)
    return PostprocessResult(
        image=image,
        algorithm="pca",
        image_throughput_corrected=image,
        snr_map=image,
        cube=np.zeros((2, 101, 101), np.float32),
        wavelengths=np.array([3.8, 3.9]),
        detections=[Detection(58.5, 35.5, 16.8, 210.5, 13.6)],
        image_unit="ADU",
        pixel_scale_mas=SCALE,
        orientation=orientation,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("offset_xy", "pa"), [((-10, 0), 90.0), ((0, 10), 0.0), ((10, 0), 270.0), ((7, -7), 225.0)]
)
def test_celestial_wcs_places_pixels_on_the_sky(tmp_path, offset_xy, pa):
    """North up, east LEFT: a pixel 10 px to the left of the star is 10 * scale to the east."""
    path = write_product(
        _result(Orientation(True, "parallactic", 104.84, -0.45).with_pointing(*TARGET)), tmp_path / "p.fits"
    )
    star = SkyCoord(*TARGET, unit="deg")
    cy, cx = geometry.frame_center((101, 101))
    with fits.open(path) as hdul:
        for name in ("IMAGE", "IMAGE_TC", "SNR_MAP"):
            header = hdul[name].header
            assert header["CTYPE1"] == "RA---TAN" and header["RADESYS"] == "ICRS"
            wcs = WCS(header)
            assert star.separation(wcs.pixel_to_world(cx, cy)).to_value("mas") < 1e-6
            where = wcs.pixel_to_world(cx + offset_xy[0], cy + offset_xy[1])
            assert star.separation(where).to_value("mas") == pytest.approx(
                np.hypot(*offset_xy) * SCALE, rel=1e-4
            )
            assert star.position_angle(where).deg % 360 == pytest.approx(pa, abs=1e-3)
            # ... and agrees with hcdc's own PA convention.
            assert geometry.pixel_to_polar(cx + offset_xy[0], cy + offset_xy[1], (101, 101))[
                1
            ] == pytest.approx(pa)


def test_bunit_on_every_image_and_orientation_stated(tmp_path):
    path = write_product(_result(Orientation()), tmp_path / "p.fits")
    with fits.open(path) as hdul:
        for hdu in hdul[1:]:
            if hdu.is_image:
                assert "BUNIT" in hdu.header, hdu.name
                assert hdu.header["ORIENT"] == "DETECTOR" and hdu.header["PACONV"] == "DETECTOR"
                assert hdu.header["CTYPE1"] == "DETX" and hdu.header["CDELT1"] == SCALE  # no east flip
        assert hdul["IMAGE"].header["BUNIT"] == "ADU" and hdul["SNR_MAP"].header["BUNIT"] == ""
        assert hdul["DETECTIONS"].header["PACONV"] == "DETECTOR"
    assert read_product(path).orientation == Orientation()
    # Orientation known, no target: linear offsets in mas, east left.
    path = write_product(_result(Orientation(True, "derotation")), tmp_path / "q.fits")
    header = fits.getheader(path, "IMAGE")
    assert (
        header["CTYPE1"] == "XOFFSET"
        and header["CDELT1"] == -SCALE
        and header["ORIENT"] == "NORTH_UP_EAST_LEFT"
    )


def test_long_cards_are_continued_not_truncated(tmp_path):
    long_input = str(tmp_path / ("a" * 40) / "cube.fits")  # value fits one card, comment does not
    longer = "/data/" + "x" * 150 + "/it's.fits"
    warning = ("star flux 1.227 (1-FWHM flux of the PSF) is not above the brightest aperture " * 2).strip()
    result = _result(Orientation(), inputs={long_input: "f" * 64, longer: None}, warnings=[warning])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy's "Card is too long, comment will be truncated"
        path = write_product(result, tmp_path / "p.fits")
    header = fits.getheader(path)
    assert header["INPUT1"] == long_input and header.comments["INPUT1"] == "input file"
    assert header["INPUT2"] == longer
    back = read_product(path)
    assert back.inputs == {long_input: "f" * 64, longer: None} and back.warnings == [warning]


def test_set_card_keeps_numeric_comments(tmp_path):
    header = fits.Header()
    set_card(
        header,
        "HIERARCH HCDC SOMETHING LONG",
        1.5,
        "a comment that cannot fit beside a hierarch keyword and value",
    )
    assert header["HIERARCH HCDC SOMETHING LONG"] == 1.5
    assert any("a comment that cannot fit" in str(c) for c in header["COMMENT"])


def test_previews_of_an_unknown_orientation_are_not_flipped_to_the_sky():
    from hcdc.science.postprocessing.previews import display_offset

    # 10 px to the right of the star: on the sky (north up, east left) that is west, ΔRA < 0;
    # in the detector frame it is simply Δx > 0.
    assert display_offset(60.0, 50.0, (101, 101), 0.027, "arcsec") == pytest.approx((-0.27, 0.0))
    assert display_offset(60.0, 50.0, (101, 101), 0.027, "arcsec", sky=False) == pytest.approx((0.27, 0.0))
