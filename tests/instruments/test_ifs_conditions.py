"""Per-frame AO conditions in IFS Level 1 products (``level1-ifs`` 0.4), by the function the
IRDIS Level 1 shares (:mod:`hcdc.instruments.sphere.frame_conditions`): values interpolated from
a SPARTA file whose Strehl and r0 rise linearly (known answer), frames outside the telemetry
flagged, an unreadable SPARTA file listed with its reason, and the recipe end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from hcdc.instruments.sphere.ifs.frame_conditions import add_ifs_conditions, read_ifs_conditions
from hcdc.instruments.sphere.sparta import write_sparta


def _sparta(path: Path, t0: float, t1: float, ra: float = 120.0, dec: float = -30.0) -> Path:
    mjd = np.arange(t0, t1, 30.0 / 86400.0)
    x = (mjd - t0) / (t1 - t0)
    atm = {"mjd": mjd, "r0_m": 0.10 + 0.05 * x, "wind_m_s": np.full(mjd.size, 10.0), "strehl": 0.6 + 0.3 * x}
    h = fits.Header()
    h["INSTRUME"] = "SPHERE"
    h["RA"], h["DEC"] = ra, dec
    h["DATE-OBS"] = Time(mjd[0], format="mjd", scale="utc").isot
    h["HIERARCH ESO DPR CATG"] = "SCIENCE"
    h["HIERARCH ESO DPR TYPE"] = "OBJECT,AO"
    h["HIERARCH ESO DPR TECH"] = "IMAGE"
    return write_sparta(path, h, atm)


def _truth(mjd: np.ndarray, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    x = (mjd - t0) / (t1 - t0)
    return 0.6 + 0.3 * x, 0.10 + 0.05 * x


def _product(path: Path, frame_mjd: np.ndarray) -> Path:
    primary = fits.PrimaryHDU(np.zeros((2, len(frame_mjd), 4, 4), np.float32))
    primary.header["HIERARCH HCDC RECIPE"] = "level1-ifs"
    primary.header["HIERARCH HCDC RA"] = 120.0  # transiting at Paranal at MJD 60000.1
    primary.header["HIERARCH HCDC DEC"] = -30.0
    frames = Table({"FILE": ["a.fits"] * len(frame_mjd), "MJD": frame_mjd})
    fits.HDUList([primary, fits.BinTableHDU(frames, name="FRAMES")]).writeto(path)
    return path


def test_conditions_written_into_the_ifs_product(tmp_path):
    t0 = 60000.1
    t1 = t0 + 1800 / 86400
    frame_mjd = t0 + np.array([60.0, 600.0, 1200.0, 1790.0, 3600.0]) / 86400  # the last: no telemetry
    product = _product(tmp_path / "level1_ifs.fits", frame_mjd)
    assert read_ifs_conditions(product) is None  # a product without the table (< 0.4)
    sparta = _sparta(tmp_path / "SPHER.ao.fits", t0, t1)
    broken = tmp_path / "SPHER.broken.fits"
    fits.PrimaryHDU().writeto(broken)
    table = add_ifs_conditions(tmp_path, [sparta, broken])
    strehl, r0 = _truth(frame_mjd[:4], t0, t1)
    np.testing.assert_allclose(table["STREHL"][:4], strehl, rtol=1e-5)
    np.testing.assert_allclose(table["R0"][:4], r0, rtol=1e-5)
    np.testing.assert_allclose(table["TAU0"][:4], 0.314 * r0 / 10.0, rtol=1e-5)
    assert list(table["NO_TELEMETRY"]) == [False, False, False, False, True]
    assert np.isnan(table["STREHL"][4]) and len(table.meta["problems"]) == 1
    assert "SPHER.broken.fits" in table.meta["problems"][0]
    # the product now carries both tables, the science HDUs untouched
    with fits.open(product) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "FRAMES", "CONDITIONS", "AO_FILES"]
        files = hdul["AO_FILES"].data
        assert list(files["USED"]) == [True, False] and hdul["CONDITIONS"].header["AO_NBAD"] == 1
        assert hdul["CONDITIONS"].header["AO_COVER"] == pytest.approx(0.8)
    read = read_ifs_conditions(product)
    np.testing.assert_allclose(read["STREHL"][:4], strehl, rtol=1e-5)
    # the pointing of the product's header: near transit at Paranal, airmass ~1.0
    assert np.all((read["AIRMASS"] >= 1.0) & (read["AIRMASS"] < 1.05))
    # written again (a rerun): replaced, not appended
    add_ifs_conditions(product, [])
    with fits.open(product) as hdul:
        assert [h.name for h in hdul].count("CONDITIONS") == 1 and all(
            hdul["CONDITIONS"].data["NO_TELEMETRY"]
        )
    with pytest.raises(ValueError, match="not a Level 1 IFS product"):
        add_ifs_conditions(sparta, [])


@pytest.mark.slow
def test_level1_ifs_04_recipe_with_sparta(tmp_path):
    """A simulated YJ night ('small') and a SPARTA file over its OBJECT frames through
    ``level1-ifs`` 0.6 (the newest, 0.4's conditions): every OBJECT frame gets the interpolated
    truth, the summary the medians, and Level 2 reads the table (``Level1Cube.conditions``)."""
    from hcdc.instruments.sphere.ifs.level1 import level1_cube
    from hcdc.instruments.sphere.ifs.simulate import simulate_ifs_night
    from hcdc.pipeline.registry import get_recipe, run_recipe

    # 0.6 (newest): 0.5's band-edge response and conditions + the star centres' error bound
    assert get_recipe("level1-ifs").version == "0.6" and get_recipe("level1-ifs").band_response
    assert get_recipe("level1-ifs", "0.5").max_center_err_px is None
    assert get_recipe("level1-ifs").with_conditions and get_recipe("level1-ifs", "0.4").with_conditions
    assert get_recipe("level1-ifs", "0.2").with_conditions is False
    assert get_recipe("level1-ifs", "0.4").band_response is False
    night = simulate_ifs_night(tmp_path / "raw", mode="YJ", seed=0, scale="small")
    first = fits.getheader(night.select("OBJECT")[0].path)
    t0 = Time(first["DATE-OBS"], scale="utc").mjd - 120 / 86400
    t1 = t0 + 3600 / 86400
    sparta = _sparta(tmp_path / "SPHER.ao.fits", t0, t1, first["RA"], first["DEC"])
    result = run_recipe(
        "level1-ifs", {"raw": [f.path for f in night.files] + [sparta]}, work_dir=tmp_path / "w"
    )
    summary = result.outputs["summary"]
    assert summary["ao_telemetry_files"] == 1 and summary["frames_with_ao_telemetry"] == summary["frames"]
    cube = level1_cube(result.outputs["product"])
    table = cube.conditions
    assert table is not None and len(table) == cube.cube.shape[1]
    strehl, r0 = _truth(np.asarray(table["MJD"]), t0, t1)
    np.testing.assert_allclose(table["STREHL"], strehl, rtol=1e-5)
    np.testing.assert_allclose(table["R0"], r0, rtol=1e-5)
    assert summary["ao_conditions"]["strehl_median"] == pytest.approx(float(np.median(strehl)), rel=1e-5)
    # the conditions' frame times are the cube's frames (FRAMES MJD)
    with fits.open(result.outputs["product"]) as hdul:
        np.testing.assert_array_equal(hdul["CONDITIONS"].data["MJD"], hdul["FRAMES"].data["MJD"])


@pytest.mark.slow
def test_simulated_ifs_night_with_telemetry_through_level1(tmp_path):
    """``simulate_ifs_night(ao_telemetry=True)`` writes SPARTA files over the science template
    (the IFS frames byte-identical to a night without), and ``level1-ifs`` gives every OBJECT
    frame the simulator's true conditions within SPARTA's simulated noise (Strehl 2 %, r0 3 %,
    wind 5 %, plus the linear interpolation between 30-s samples)."""
    from hcdc.instruments.sphere.ifs.level1 import level1_cube
    from hcdc.instruments.sphere.ifs.simulate import simulate_ifs_night
    from hcdc.instruments.sphere.sparta import read_sparta
    from hcdc.pipeline.registry import run_recipe
    from hcdc.science.checksums import sha256_file

    night = simulate_ifs_night(tmp_path / "raw", mode="YJ", seed=0, scale="small", ao_telemetry=True)
    plain = simulate_ifs_night(tmp_path / "plain", mode="YJ", seed=0, scale="small")
    assert [sha256_file(f.path) for f in night.files] == [sha256_file(f.path) for f in plain.files]
    ao = night.extra["ao_telemetry"]
    sparta = [night.out_dir / name for name in ao["files"]]
    assert len(sparta) >= 1 and all(read_sparta(p).atm_valid.any() for p in sparta)
    result = run_recipe(
        "level1-ifs", {"raw": [f.path for f in night.files] + sparta}, work_dir=tmp_path / "w"
    )
    summary = result.outputs["summary"]
    assert summary["ao_telemetry_files"] == len(sparta)
    assert summary["frames_with_ao_telemetry"] == summary["frames"]
    table = level1_cube(result.outputs["product"]).conditions
    mjd = np.asarray(table["MJD"])
    truth = {k: np.interp(mjd, ao["mjd"], v) for k, v in ao["truth"].items()}
    errors = {}
    for column, key in (("STREHL", "strehl"), ("SEEING", "seeing"), ("TAU0", "tau0_s"), ("WIND", "wind_m_s")):
        rel = np.abs(np.asarray(table[column]) / truth[key] - 1)
        errors[column] = (float(np.median(rel)), float(rel.max()))
    assert errors["STREHL"][0] < 0.03 and errors["STREHL"][1] < 0.08, errors
    assert errors["SEEING"][0] < 0.04 and errors["SEEING"][1] < 0.12, errors
    assert errors["TAU0"][0] < 0.08 and errors["TAU0"][1] < 0.25, errors
    assert errors["WIND"][0] < 0.08 and errors["WIND"][1] < 0.2, errors
    print("relative errors (median, worst):", errors)
