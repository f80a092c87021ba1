"""Level 2 product files and previews: FITS round trip, headers with units/provenance, PNG previews."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from astropy.io import fits

import hcdc
from hcdc.science.checksums import sha256_file
from hcdc.science.geometry import distance_map, polar_to_pixel
from hcdc.science.orientation import Orientation
from hcdc.science.postprocessing.previews import (
    display_offset,
    plot_contrast_curves,
    plot_image,
    write_previews,
)
from hcdc.science.postprocessing.products import (
    ContrastCurves,
    Detection,
    PostprocessResult,
    ProductError,
    read_product,
    write_product,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _gaussian(shape, x, y, sigma, amplitude):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return amplitude * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))


@pytest.fixture
def full_result() -> PostprocessResult:
    """A result with every output filled, two wavelengths, one companion at PA 211 deg."""
    rng = np.random.default_rng(3)
    n = 65
    x, y = polar_to_pixel(16.6, 211.0, (n, n))
    image = rng.normal(0.0, 1.0, (n, n)).astype(np.float32) + _gaussian((n, n), x, y, 2.0, 30.0)
    image[distance_map(image.shape) < 3] = np.nan
    cube = np.stack([image, 0.5 * image]).astype(np.float32)
    sep = np.arange(3.0, 30.0)
    curves = ContrastCurves(
        separation_px=sep,
        contrast=[1e-2 * np.exp(-sep / 8.0), 2e-2 * np.exp(-sep / 8.0)],
        throughput=[np.linspace(0.2, 0.9, sep.size)] * 2,
        noise=[np.linspace(5.0, 1.0, sep.size)] * 2,
    )
    params = {"ncomp": 10, "collapse": "median", "list": list(range(40)), "note": "x" * 150}
    det = Detection(
        x,
        y,
        16.6,
        211.0,
        12.3,
        separation_mas=16.6 * 27.19,
        flux=648.2,
        contrast=8.47e-4,
        fpf=1.5e-10,
        flux_err=21.0,
        contrast_err=2.7e-5,
        photometry="negfc",
        separation_err_px=0.21,
        separation_err_mas=0.21 * 27.19,
        pa_err_deg=0.35,
    )
    return PostprocessResult(
        image=image,
        algorithm="pca",
        params=params,
        image_throughput_corrected=image / 0.6,
        cube=cube,
        wavelengths=np.array([2.110, 2.251]),
        snr_map=image / 2,
        contrast=curves,
        detections=[det],
        image_unit="ADU/s",
        pixel_scale_mas=27.19,
        fwhm=4.6,
        star_flux=764939.6,
        detection_threshold=5.0,
        inputs={"cube.fits": "0" * 64, "angles.fits": None},
        # The orientation is declared known (issue 8: products say north up only when it is).
        orientation=Orientation(True, "derotation", 0.0, 0.0),
    )


def test_round_trip_keeps_every_output(tmp_path, full_result):
    path = write_product(full_result, tmp_path / "product.fits")
    back = read_product(path)
    for name in ("image", "image_throughput_corrected", "cube", "snr_map"):
        np.testing.assert_array_equal(getattr(back, name), getattr(full_result, name).astype(np.float32))
    np.testing.assert_allclose(back.wavelengths, [2.110, 2.251])
    assert back.params == full_result.params  # long JSON survives the CONTINUE cards
    assert back.algorithm == "pca"
    assert back.inputs == {"cube.fits": "0" * 64, "angles.fits": None}
    assert back.software_version == hcdc.__version__
    assert back.created == full_result.created
    assert (back.image_unit, back.pixel_scale_mas, back.fwhm, back.star_flux) == (
        "ADU/s",
        27.19,
        4.6,
        764939.6,
    )
    assert back.detection_threshold == 5.0 and back.detection_fpf is None
    assert back.detections == full_result.detections
    for name in ("separation_px", "contrast", "throughput", "noise"):
        np.testing.assert_array_equal(getattr(back.contrast, name), getattr(full_result.contrast, name))
    assert back.contrast.nsigma == 5.0 and back.contrast.student
    assert not list(tmp_path.glob("*.partial"))  # written atomically


def test_headers_carry_units_orientation_and_provenance(tmp_path, full_result):
    path = write_product(full_result, tmp_path / "product.fits")
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == [
            "PRIMARY",
            "IMAGE",
            "IMAGE_TC",
            "CUBE",
            "WAVELENGTH",
            "SNR_MAP",
            "CONTRAST",
            "DETECTIONS",
        ]
        primary = hdul[0].header
        assert primary["HCDCVER"] == hcdc.__version__
        assert primary["ALGORITH"] == "pca"
        assert json.loads(primary["PARAMS"])["ncomp"] == 10
        assert primary["INPUT1"] == "cube.fits" and primary["INSHA1"] == "0" * 64
        assert "INSHA2" not in primary
        assert primary["ORIENT"] == "NORTH_UP_EAST_LEFT"
        image = hdul["IMAGE"].header
        assert image["BUNIT"] == "ADU/s"
        # Star at (n//2, n//2) 0-based -> CRPIX n//2 + 1; east left -> negative CDELT1 in mas.
        assert (image["CRPIX1"], image["CRPIX2"]) == (33.0, 33.0)
        assert image["CDELT1"] == -27.19 and image["CDELT2"] == 27.19 and image["CUNIT1"] == "mas"
        assert hdul["SNR_MAP"].header["BUNIT"] == ""
        assert hdul["CUBE"].header["CUNIT3"] == "um"
        contrast = hdul["CONTRAST"]
        units = {c.name: c.unit for c in contrast.columns}
        assert units["SEP_PX"] == "pix" and units["SEP_MAS"] == "mas" and units["NOISE_1"] == "ADU/s"
        assert contrast.header["WAVE1"] == pytest.approx(2.251)
        np.testing.assert_allclose(contrast.data["SEP_MAS"], np.arange(3.0, 30.0) * 27.19)
        dets = hdul["DETECTIONS"]
        assert {c.name: c.unit for c in dets.columns}["PA"] == "deg"
        assert dets.data["SEP_MAS"][0] == pytest.approx(451.354)


def test_minimal_product_round_trip(tmp_path):
    image = np.arange(25, dtype=np.float32).reshape(5, 5)
    path = write_product(PostprocessResult(image=image, algorithm="cadi"), tmp_path / "min.fits")
    back = read_product(path)
    np.testing.assert_array_equal(back.image, image)
    assert back.cube is None and back.snr_map is None and back.contrast is None and back.detections == []
    assert back.pixel_scale_mas is None and back.params == {}
    with fits.open(path) as hdul:
        assert "CDELT1" not in hdul["IMAGE"].header  # no plate scale, no invented WCS


def test_bad_files_are_reported_with_their_name(tmp_path):
    not_fits = tmp_path / "notes.fits"
    not_fits.write_text("this is not FITS")
    with pytest.raises(ProductError, match="notes.fits"):
        read_product(not_fits)
    other = tmp_path / "other.fits"
    fits.PrimaryHDU(np.zeros((3, 3))).writeto(other)
    with pytest.raises(ProductError, match="other.fits.*no IMAGE"):
        read_product(other)
    with pytest.raises(ProductError, match="missing.fits"):
        read_product(tmp_path / "missing.fits")


def test_sha256_file_matches_hashlib(tmp_path):
    data = np.random.default_rng(0).bytes(3_000_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_contrast_interpolation_and_summary(full_result):
    curves = full_result.contrast
    # log-linear interpolation is exact for an exponential curve
    assert curves.at(10.5, 0) == pytest.approx(1e-2 * math.exp(-10.5 / 8.0), rel=1e-12)
    assert curves.at(10.5, 1) == pytest.approx(2e-2 * math.exp(-10.5 / 8.0), rel=1e-12)
    assert math.isnan(curves.at(50.0))
    summary = full_result.summary()
    json.dumps(summary)  # JSON-ready
    rows = {row["separation_arcsec"]: row for row in summary["contrast_at"]}
    assert set(rows) == {0.2, 0.3, 0.5, 1.0}
    sep_px = 300.0 / 27.19
    assert rows[0.3]["contrast"][0] == pytest.approx(1e-2 * math.exp(-sep_px / 8.0), rel=1e-9)
    assert rows[1.0]["contrast"] == [None, None]  # 36.8 px is beyond the curve
    assert summary["detections"][0]["pa_deg"] == 211.0
    full_result.pixel_scale_mas = None
    assert full_result.summary()["contrast_at"] == []


def test_contrast_provenance_round_trip(tmp_path, full_result):
    """How the curve was made (criterion, fpf, throughput fakes) survives the FITS round trip, in
    commented header keywords of the CONTRAST extension; so does a completeness curve."""
    default = read_product(write_product(full_result, tmp_path / "default.fits")).contrast
    assert (default.criterion, default.fpf, default.fc_snr, default.completeness) == (
        "detection",
        None,
        None,
        None,
    )
    assert default.fakes_at_limit
    curves = full_result.contrast
    curves.criterion, curves.fpf, curves.fc_snr = "vip", 2.87e-7, 100.0
    curves.completeness = 3.0 * curves.contrast
    curves.completeness[1, :4] = np.nan  # not reached there
    curves.completeness_level, curves.completeness_fakes = 0.95, 20
    path = write_product(full_result, tmp_path / "vip.fits")
    with fits.open(path) as hdul:
        header = hdul["CONTRAST"].header
        assert (header["CRITERIO"], header["CURVEFPF"], header["FAKES"], header["FCSNR"]) == (
            "vip",
            2.87e-7,
            "FIXED",
            100.0,
        )
        assert (header["COMPLETE"], header["COMPNFAK"]) == (0.95, 20)
        for key in ("CRITERIO", "CURVEFPF", "FAKES", "FCSNR", "COMPLETE", "COMPNFAK"):
            assert header.comments[key], key
        assert "COMPL_1" in hdul["CONTRAST"].columns.names
    back = read_product(path).contrast
    assert (back.criterion, back.fpf, back.fc_snr, back.fakes_at_limit) == ("vip", 2.87e-7, 100.0, False)
    assert (back.completeness_level, back.completeness_fakes) == (0.95, 20)
    np.testing.assert_array_equal(back.completeness, curves.completeness)
    # The summary says how the curve was made and gives the completeness contrast.
    summary = full_result.summary()
    assert summary["contrast_curve"]["throughput_fakes"] == "fixed S/N"
    assert summary["contrast_curve"]["completeness"] == 0.95
    row = next(r for r in summary["contrast_at"] if r["separation_arcsec"] == 0.3)
    assert row["completeness_contrast"][0] == pytest.approx(3.0 * row["contrast"][0], rel=1e-9)
    with pytest.raises(ValueError, match="level"):
        ContrastCurves(np.arange(3.0), np.ones(3), np.ones(3), np.ones(3), completeness=np.ones(3))


def test_contrast_with_bad_fakes_keyword_is_reported(tmp_path, full_result):
    path = write_product(full_result, tmp_path / "p.fits")
    with fits.open(path, mode="update") as hdul:
        hdul["CONTRAST"].header["FAKES"] = "FIXED"  # but no FCSNR
    with pytest.raises(ProductError, match="p.fits.*FAKES"):
        read_product(path)


def test_contrast_curves_reject_inconsistent_shapes():
    with pytest.raises(ValueError, match="separations"):
        ContrastCurves(np.arange(5.0), np.ones(4), np.ones(5), np.ones(5))


def test_display_offsets_follow_north_up_east_left():
    shape = (101, 101)
    east_x, east_y = polar_to_pixel(10.0, 90.0, shape)  # PA 90 = east = -x
    dra, ddec = display_offset(east_x, east_y, shape, 0.027, "arcsec")
    assert dra == pytest.approx(0.27) and ddec == pytest.approx(0.0, abs=1e-12)
    north_x, north_y = polar_to_pixel(10.0, 0.0, shape)
    assert display_offset(north_x, north_y, shape, 1.0, "px") == pytest.approx((0.0, 10.0))


def test_previews_are_png_files(tmp_path, full_result):
    written = write_previews(full_result, tmp_path, stem="demo")
    assert set(written) == {"image", "image_tc", "snr_map", "contrast"}
    for path in written.values():
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_previews_without_plate_scale(tmp_path, full_result):
    full_result.pixel_scale_mas = None
    image_png = plot_image(full_result.image, tmp_path / "img.png", title="no scale")
    curve_png = plot_contrast_curves(full_result.contrast, tmp_path / "cc.png")
    assert image_png.read_bytes().startswith(PNG_SIGNATURE)
    assert curve_png.read_bytes().startswith(PNG_SIGNATURE)


def test_unknown_values_become_json_null(tmp_path):
    det = Detection(10.0, 12.0, 5.0, 45.0, 6.2)  # no flux, contrast, FPF: NaN
    result = PostprocessResult(image=np.zeros((21, 21), dtype=np.float32), algorithm="cadi", detections=[det])
    text = json.dumps(result.summary(), allow_nan=False)  # strict JSON: NaN would raise
    row = json.loads(text)["detections"][0]
    assert row["contrast"] is None and row["flux"] is None and row["snr"] == 6.2
    back = read_product(write_product(result, tmp_path / "nan.fits"))
    assert math.isnan(back.detections[0].contrast) and back.detections[0].photometry == "aperture"


#: two left-out spectral residuals (l2-postprocess 1.4+ of an ASDI reduction); any values give a
#: SPECRnnn card longer than 80 characters with its comment
RESIDUALS = [
    {"separation_px": 37.81, "pa_deg": 61.97, "snr": 11.24, "of_separation_px": 28.02, "of_pa_deg": 60.01},
    {"separation_px": 105.5, "pa_deg": 359.2, "snr": 123.45, "of_separation_px": 78.0, "of_pa_deg": 1.0},
]


@pytest.mark.parametrize("whole", [True, False])
def test_spectral_residual_cards_without_verify_warning_and_read_back(tmp_path, full_result, whole):
    """1.6 (``whole_comments``): whole comments, SPECRnnn as long-string cards; 1.4/1.5: the bytes
    astropy wrote when it cut the comments with a VerifyWarning, now without the warning. Both
    are read back by read_product."""
    import warnings

    from astropy.io.fits.verify import VerifyWarning

    full_result.spectral_residuals = [dict(r) for r in RESIDUALS]
    path = tmp_path / "spec.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error", VerifyWarning)
        write_product(full_result, path, whole_comments=whole)
        with fits.open(path) as hdul:
            header = hdul["DETECTIONS"].header
            image = header.cards["SPECRES"].image
            assert header["SPECR001"] == "37.81 px PA 61.97 S/N 11.24 of 28.02 px PA 60.01"
            comment = header.comments["SPECR002"]
    if whole:
        assert comment == "left-out spectral residual"
        assert image.rstrip().endswith("/ left out: spectral residuals of brighter ones")
    else:  # the card as l2-postprocess 1.4 wrote it (astropy kept its first 80 characters)
        assert image == "SPECRES =                    2 / candidates left out: a brighter one's spectral "
        assert comment == "left-out spectr"  # 80 characters
    back = read_product(path).spectral_residuals
    assert len(back) == len(RESIDUALS)
    for got, want in zip(back, RESIDUALS, strict=True):
        assert got == pytest.approx(want)  # the cards' 2 decimals
    # a product without the cards reads back None
    full_result.spectral_residuals = None
    write_product(full_result, path)
    assert read_product(path).spectral_residuals is None


def test_old_spectral_residual_cards_keep_their_bytes(tmp_path, full_result):
    """What astropy wrote from 1.4's (value, comment) with the warning is byte for byte what the
    1.4/1.5 writer writes now without it."""
    import warnings

    full_result.spectral_residuals = [dict(r) for r in RESIDUALS]
    header = fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header["SPECRES"] = (2, "candidates left out: a brighter one's spectral residual")
        for k, r in enumerate(RESIDUALS, start=1):
            header[f"SPECR{k:03d}"] = (
                f"{r['separation_px']:.2f} px PA {r['pa_deg']:.2f} S/N {r['snr']:.2f} "
                f"of {r['of_separation_px']:.2f} px PA {r['of_pa_deg']:.2f}",
                "left-out spectral residual",
            )
        expected = [card.image for card in header.cards]
    write_product(full_result, tmp_path / "old.fits", whole_comments=False)
    with fits.open(tmp_path / "old.fits") as hdul:
        written = [c.image for c in hdul["DETECTIONS"].header.cards if c.keyword.startswith("SPECR")]
    assert written == expected


def test_photometry_fakes_round_trip(tmp_path, full_result):
    """1.6's record of the photometry fakes (per detection): card PHOTFAKE, columns FAKEFLUX,
    FAKEITER, FAKECONV, the summary's photometry_* keys; absent (None) before."""
    full_result.photometry_fakes = [{"fake_flux": 812.5, "iterations": 2, "converged": True}]
    path = write_product(full_result, tmp_path / "fakes.fits")
    with fits.open(path) as hdul:
        assert hdul["DETECTIONS"].header["PHOTFAKE"] == "FLUX"
        assert list(hdul["DETECTIONS"].data["FAKEITER"]) == [2]
    back = read_product(path)
    assert back.photometry_fakes == [{"fake_flux": 812.5, "iterations": 2, "converged": True}]
    (det,) = back.summary()["detections"]
    assert (det["photometry_fake_flux"], det["photometry_iterations"], det["photometry_converged"]) == (
        812.5,
        2,
        True,
    )
    full_result.photometry_fakes = None
    path = write_product(full_result, tmp_path / "none.fits")
    with fits.open(path) as hdul:
        assert "PHOTFAKE" not in hdul["DETECTIONS"].header
        assert "FAKEFLUX" not in hdul["DETECTIONS"].columns.names
    assert read_product(path).photometry_fakes is None
    assert "photometry_iterations" not in read_product(path).summary()["detections"][0]
