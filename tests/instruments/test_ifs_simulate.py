"""The IFS geometry (hcdc.instruments.sphere.ifs.geometry) and the raw-IFS simulator
(hcdc.instruments.sphere.ifs.simulate, ``hcdc simulate ifs``): geometry facts, headers classified like
the real IFS headers, micro-spectra where the truth puts them."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time
from typer.testing import CliRunner

from hcdc.cli import app
from hcdc.instruments.registry import read_file
from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.ifs import geometry as geo
from hcdc.instruments.sphere.ifs.simulate import read_ifs_truth
from hcdc.science.calibration.timing import dit_times, parallactic_angle

from .conftest import REAL_FILES, WAVE_YJ, WAVE_YJH

# ---------------------------------------------------------------------------------------------
# Geometry


def test_full_detector_holds_about_19000_spectra_that_never_overlap() -> None:
    grid = geo.lenslet_grid()
    assert 18_000 < len(grid) < 19_500
    xy = grid.trace_xy
    # every pair of spectra whose traces overlap in y is >= 5 px apart in x (neighbours within 3 pitches)
    order = np.argsort(xy[:, 0])
    xs, ys = xy[order, 0], xy[order, 1]
    worst = np.inf
    for k in range(1, 40):
        dx = xs[k:] - xs[:-k]
        dy = np.abs(ys[k:] - ys[:-k])
        overlap = dy < geo.SPECTRUM_LENGTH_PX + 2.0
        if overlap.any():
            worst = min(worst, float(dx[overlap].min()))
    assert worst > 5.0


def test_dispersion_law_and_output_channels() -> None:
    for name, (lo, hi, resolving_power, n_lasers) in {
        "YJ": (960, 1350, 55, 3),
        "YJH": (960, 1650, 35, 4),
    }.items():
        optics = geo.ifs_mode_optics(name)
        waves = geo.output_wavelengths_nm(name)
        assert waves.shape == (39,) and (waves[0], waves[-1]) == (lo, hi)
        offsets = optics.trace_offset_px(waves)
        assert offsets[0] == pytest.approx(-geo.SPECTRUM_LENGTH_PX / 2) and offsets[-1] == pytest.approx(19.0)
        assert np.all(np.diff(offsets) > 0)  # longer wavelengths at larger y
        np.testing.assert_allclose(optics.wavelength_at_offset(offsets), waves, atol=1e-9)
        # the spectral PSF (FWHM 2.355 sigma px) gives charis-dep's resolving power within 15 %
        fwhm_nm = 2.355 * geo.SPECTRAL_PSF_SIGMA_PX * optics.dispersion_nm_per_px(waves)
        assert np.median(waves / fwhm_nm) == pytest.approx(resolving_power, rel=0.15)
        assert len(optics.lasers_nm) == n_lasers and all(lo < w < hi for w in optics.lasers_nm)
        # prism: more px per nm in the blue
        disp = optics.dispersion_nm_per_px(waves)
        assert disp[0] < disp[-1]
    assert geo.ifs_mode_optics("OBS_H").name == geo.ifs_mode_optics("IFS-YJH").name == "YJH"
    with pytest.raises(ValueError, match="unknown IFS mode 'K'"):
        geo.ifs_mode_optics("K")


# ---------------------------------------------------------------------------------------------
# The simulator, through the CLI


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ifs_yj")
    result = CliRunner().invoke(app, ["simulate", "ifs", str(out), "--mode", "YJ", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["truth_json"] == str(out / "simulation_truth.json")
    return out, json.loads((out / "simulation_truth.json").read_text())


def test_cli_refuses_unknown_mode_and_scale(tmp_path: Path) -> None:
    bad_mode = CliRunner().invoke(app, ["simulate", "ifs", str(tmp_path), "--mode", "K"])
    assert bad_mode.exit_code != 0 and "unknown IFS mode 'K'" in bad_mode.output
    bad_scale = CliRunner().invoke(app, ["simulate", "ifs", str(tmp_path), "--scale", "huge"])
    assert bad_scale.exit_code != 0 and "unknown scale 'huge'" in bad_scale.output


def test_night_content(night: tuple[Path, dict]) -> None:
    out, truth = night
    types = [f["dpr_type"] for f in truth["files"]]
    assert (
        types.count("OBJECT") == 2 and types.count("OBJECT,CENTER") == 2 and types.count("OBJECT,FLUX") == 2
    )
    assert types.count("SKY") == 1 and types.count("WAVE,LAMP") == 1 and types.count("SPECPOS,LAMP") == 1
    flats = [f for f in truth["files"] if f["dpr_type"] == "FLAT,LAMP"]
    assert sorted(f["comb"] for f in flats if f["dpr_tech"] == "IMAGE") == sorted(
        f"{c}_YJ" for c in ("CAL_BB_2", "CAL_NB1_1", "CAL_NB2_1", "CAL_NB3_1") for _ in range(2)
    )
    assert [f["comb"] for f in flats if f["dpr_tech"] == "IFU"] == ["OBS_YJ"]
    for f in truth["files"]:
        data = fits.getdata(f["path"])
        assert data.shape == (f["ndit"], 1024, 1024) and data.dtype == np.dtype(">f4")
    assert [c["spectrum"] for c in truth["companions"]] == ["flat", "methane"]
    methane = np.array(truth["companions"][1]["contrast_per_channel"])
    waves = np.array(truth["wavelengths_nm"])
    # the methane companion is darker in the 1150 nm band than in the 1250 nm continuum
    assert methane[np.argmin(abs(waves - 1150))] < 0.5 * methane[np.argmin(abs(waves - 1250))]
    assert truth["geometry"]["n_lenslets"] == 4402 or 4300 < truth["geometry"]["n_lenslets"] < 4500


#: FileMetadata fields and extra keys that must be equal between a simulated file and the real one
FIELDS = (
    "instrument",
    "arm",
    "category",
    "type",
    "technique",
    "file_class",
    "mode",
    "filter",
    "readout_mode",
)
EXTRA = (
    "seq_arm",
    "det_id",
    "ins_mode",
    "irdis_mode",
    "ifs_mode",
    "ifs_comb",
    "disperser",
    "dichroic",
    "pixscale_mas",
)
SCIENCE_EXTRA = ("comb_rot", "derotator_mode", "waffle_orient", "apodizer", "nir_coronagraph", "lyot_stop")


@pytest.mark.shared_data
def test_classified_exactly_like_the_real_headers(
    night: tuple[Path, dict], real_fits, tmp_path: Path
) -> None:
    """Each simulated file type reads back with the same metadata as the real file of that type."""
    out, truth = night
    pairs = {
        "OBJECT,CENTER": REAL_FILES[0],
        "OBJECT": REAL_FILES[1],
        "OBJECT,FLUX": REAL_FILES[5],
        "WAVE,LAMP": WAVE_YJ,
    }
    for dpr_type, real_name in pairs.items():
        ours = next(f["path"] for f in truth["files"] if f["dpr_type"] == dpr_type)
        mine, header = read_file(ours)
        real, _ = read_file(real_fits[real_name])
        for name in FIELDS:
            assert getattr(mine, name) == getattr(real, name), (dpr_type, name)
        assert (mine.wavelength_min, mine.wavelength_max) == (real.wavelength_min, real.wavelength_max)
        keys = EXTRA + (SCIENCE_EXTRA if real.category == "SCIENCE" else ())
        for key in keys:
            assert mine.extra.get(key) == real.extra.get(key), (dpr_type, key)
        if real.category == "SCIENCE":
            assert mine.coronagraph == real.coronagraph == "N_ALC_YJH_S"
        # every value read from the real header is read from ours too (seeing, tau0, airmass ...)
        for f in dataclasses.fields(real):
            if f.name not in {"checksum", "datasum", "warnings", "extra"}:
                assert (getattr(mine, f.name) is None) == (getattr(real, f.name) is None), (dpr_type, f.name)
        # every keyword the extraction reads from the real header exists in ours
        missing = set(real.extra) - set(mine.extra) - {"coro_xc", "coro_yc"}  # IRDIS centring result
        assert not missing, (dpr_type, missing)
    # YJH: the WAVE,LAMP reads back like the real YJH one (OBS_H, IFS-H, IRDIFS_EXT, DIC_K, 4 lasers)
    yjh_dir = tmp_path / "yjh"
    from hcdc.instruments.sphere.ifs.simulate import simulate_ifs_night

    yjh = simulate_ifs_night(yjh_dir, mode="YJH", seed=4)
    wave = yjh.select("WAVE,LAMP")[0].path
    mine, header = read_file(wave)
    real, _ = read_file(real_fits[WAVE_YJH])
    for name in FIELDS:
        assert getattr(mine, name) == getattr(real, name), name
    for key in EXTRA:
        assert mine.extra.get(key) == real.extra.get(key), key
    real_header = fits.getheader(real_fits[WAVE_YJH])
    lasers = [k for k in real_header if k.startswith("HIERARCH ESO INS4 LAMP") and k.endswith(" NAME")]
    assert sorted((k, header[k]) for k in lasers) == sorted((k, real_header[k]) for k in lasers)


def test_parang_start_end_follow_the_timing_model(night: tuple[Path, dict]) -> None:
    out, truth = night
    for f in truth["files"]:
        if f["dpr_catg"] != "SCIENCE":
            continue
        h = fits.getheader(f["path"])
        ra = sc.parse_packed_sexagesimal(h["HIERARCH ESO INS4 DROT2 RA"]) * 15.0
        dec = sc.parse_packed_sexagesimal(h["HIERARCH ESO INS4 DROT2 DEC"])
        start, mid, end = dit_times(h["DATE-OBS"], h["HIERARCH ESO DET FRAM UTC"], f["ndit"], f["dit"], 0.2)
        pa = parallactic_angle(Time([start[0], end[-1]]), ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)
        assert h["HIERARCH ESO TEL PARANG START"] == pytest.approx(pa[0], abs=2e-3)
        assert h["HIERARCH ESO TEL PARANG END"] == pytest.approx(pa[1], abs=2e-3)
        derot = np.array(f["derot_deg"]) - np.array(f["parang_deg"])
        np.testing.assert_allclose(derot, 135.99 - 100.48 - 1.75)


def _centroid_y(image: np.ndarray, x: float, y: float, half: int = 2) -> tuple[float, float]:
    """Flux-weighted (x, y) centroid in a (2 half + 1)^2 box around the nearest pixel."""
    x0, y0 = int(round(x)), int(round(y))
    box = image[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1]
    yy, xx = np.mgrid[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1]
    w = np.clip(box, 0, None)
    return float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum())


def test_laser_spots_and_white_spectra_are_where_the_truth_puts_them(night: tuple[Path, dict]) -> None:
    out, truth = night
    meta, hdul = read_ifs_truth(out)
    with hdul:
        lenslets = hdul["LENSLETS"].data
        bias = hdul["BIAS"].data.astype(float)
        badpix = hdul["BADPIX"].data
    optics = geo.ifs_mode_optics("YJ")
    wave = next(f for f in truth["files"] if f["dpr_type"] == "WAVE,LAMP")
    image = fits.getdata(wave["path"])[0] - bias
    rng = np.random.default_rng(0)
    picks = rng.choice(len(lenslets), 200, replace=False)
    errors = []
    for k in picks:
        for line in optics.lasers_nm:
            x, y = lenslets["TRACE_X"][k], lenslets["TRACE_Y"][k] + float(optics.trace_offset_px(line))
            x0, y0 = int(round(x)), int(round(y))
            if badpix[y0 - 3 : y0 + 4, x0 - 3 : x0 + 4].any():
                continue
            cx, cy = _centroid_y(image, x, y)
            errors.append((cx - x, cy - y))
    errors = np.array(errors)
    assert len(errors) > 400
    # laser spots at the truth (a 5x5-px centroid: noise and pixel sampling, ~0.05 px)
    assert np.abs(np.median(errors, axis=0)).max() < 0.05
    assert np.percentile(np.hypot(*errors.T), 90) < 0.15
    # white lamp: the flux summed across one spectrum row matches lamp x response x dispersion
    specpos = next(f for f in truth["files"] if f["dpr_type"] == "SPECPOS,LAMP")
    image = (fits.getdata(specpos["path"])[0] - bias) / fits.getdata(out / "simulation_truth.fits", "FLAT")
    gain_check = []
    for k in picks[:50]:
        x, y = lenslets["TRACE_X"][k], lenslets["TRACE_Y"][k]
        x0, y0 = int(round(x)), int(round(y))
        if badpix[y0 - 1 : y0 + 2, x0 - 3 : x0 + 4].any():
            continue
        row_sum = image[y0, x0 - 2 : x0 + 3].sum()
        expected = (
            meta["lamps"]["white_adu_s_nm"]
            * float(optics.dispersion_nm_per_px(optics.wavelength_at_offset(y0 - y)))
            * lenslets["RESPONSE"][k]
            * wave["dit"]
        )
        gain_check.append(row_sum / expected)
    # 5 px across holds 98 % of a sigma-0.85 px Gaussian; dark current and noise add < 2 %
    assert np.median(gain_check) == pytest.approx(0.985, abs=0.02)


def test_truth_fits_describes_the_geometry(night: tuple[Path, dict]) -> None:
    out, truth = night
    meta, hdul = read_ifs_truth(out)
    with hdul:
        waves = hdul["WAVELENGTHS"].data
        contrast = hdul["COMPANION_CONTRAST"].data
        lenslets = hdul["LENSLETS"].data
    np.testing.assert_allclose(waves, geo.output_wavelengths_nm("YJ"))
    assert contrast.shape == (2, 39)
    assert len(lenslets) == meta["geometry"]["n_lenslets"]
    # trace positions follow the documented lattice -> detector mapping
    uv = np.column_stack((lenslets["U"], lenslets["V"]))
    np.testing.assert_allclose(
        geo.lattice_to_detector(uv, tuple(meta["geometry"]["origin_xy"])),
        np.column_stack((lenslets["TRACE_X"], lenslets["TRACE_Y"])),
        atol=1e-9,
    )
    np.testing.assert_allclose(lenslets["X_MAS"], lenslets["U"] * 12.25)
    assert math.isclose(meta["geometry"]["lenslet_rotation_deg"], 10.9)


def test_missing_truth_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="simulation_truth.json: no simulation truth here"):
        read_ifs_truth(tmp_path)


def test_companion_outside_the_small_field_is_refused(tmp_path: Path) -> None:
    from hcdc.instruments.sphere.ifs.simulate import IfsCompanion, simulate_ifs_night

    with pytest.raises(ValueError, match="does not fit in this scale's lenslet field"):
        simulate_ifs_night(tmp_path, companions=[IfsCompanion(700.0, 10.0, 1e-4)])
    with pytest.raises(ValueError, match="unknown companion spectrum 'blue'"):
        simulate_ifs_night(tmp_path, companions=[IfsCompanion(100.0, 10.0, 1e-4, "blue")])


def test_dit_angles_from_the_headers_equal_the_simulated_truth(night: tuple[Path, dict]) -> None:
    from hcdc.instruments.sphere.angles import dit_angles

    out, truth = night
    for f in truth["files"]:
        if f["dpr_type"] not in {"OBJECT", "OBJECT,CENTER"}:
            continue
        angles = dit_angles(fits.getheader(f["path"]), f["ndit"], arm="IFS", name=f["path"])
        np.testing.assert_allclose(angles["derot"], f["derot_deg"], atol=1e-6)
        np.testing.assert_allclose(angles["mjd"], f["mjd_mid"], atol=1e-9)
