"""The IRDIS astrometric-field file: what the measurement reads from it and refuses."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.sphere.irdis.astrometric_field import (
    AstrometricFieldError,
    measure_irdis_field,
    read_reference_list,
    simulate_irdis_astrometric_field,
)


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return simulate_irdis_astrometric_field(tmp_path_factory.mktemp("field"), seed=4, true_north_deg=-1.9)


def test_cube_and_header_checks(field, tmp_path):
    with fits.open(field["fits"]) as hdul:
        frame, header = hdul[0].data, hdul[0].header
    # a cube of three DITs is median-combined; the answer is the same truth within errors
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.stack([frame, frame, frame]), header).writeto(cube)
    result = measure_irdis_field(cube, field["catalogue"], bootstrap=50)
    assert abs(result["true_north_deg"] + 1.9) < 3 * result["true_north_err_deg"]
    assert result["posang_deg"] == 0.0 and result["anamorphism_xy"] == [1.0, 1.0062]
    assert {s["reference_id"][0] for s in result["stars"]} == {"S"}
    pupil = header.copy()
    pupil["HIERARCH ESO INS4 DROT2 MODE"] = "ELEV"
    fits.PrimaryHDU(frame, pupil).writeto(tmp_path / "pupil.fits")
    with pytest.raises(AstrometricFieldError, match=r"pupil.fits: derotator mode 'ELEV'.*field-tracking"):
        measure_irdis_field(tmp_path / "pupil.fits", field["catalogue"])
    nora = header.copy()
    del nora["RA"]
    fits.PrimaryHDU(frame, nora).writeto(tmp_path / "nora.fits")
    with pytest.raises(AstrometricFieldError, match="nora.fits: header keyword RA is missing"):
        measure_irdis_field(tmp_path / "nora.fits", field["catalogue"])


def test_reference_list_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,ra_deg,dec_deg\na,10.0,-30\nb,ten,-30\n")
    with pytest.raises(AstrometricFieldError, match="bad.csv, line 3: ra_deg/dec_deg must be numbers"):
        read_reference_list(bad)
    bad.write_text("id,ra_deg,dec_deg\na,400.0,-30\n")
    with pytest.raises(AstrometricFieldError, match="line 2: position out of range"):
        read_reference_list(bad)
    bad.write_text("id,ra_deg,dec_deg\n")
    with pytest.raises(AstrometricFieldError, match="has no star"):
        read_reference_list(bad)


def test_cli_affine_reports_the_raw_anamorphism(tmp_path):
    """`hcdc monitor astrometry measure --no-anamorphism --affine --no-store`: the affine fit on
    raw pixels finds the simulated +0.62 % anamorphism within 3 errors; with the correction it
    leaves none. Only the measurement is printed (nothing stored)."""
    import json

    from typer.testing import CliRunner

    from hcdc.cli import app

    paths = simulate_irdis_astrometric_field(tmp_path / "f", seed=11, posang_deg=10.0)
    args = ["monitor", "astrometry", "measure", str(paths["fits"]), "--catalogue", str(paths["catalogue"])]
    runner = CliRunner()
    raw = runner.invoke(app, [*args, "--no-anamorphism", "--affine", "--no-store", "--json"])
    assert raw.exit_code == 0, raw.output
    fit = json.loads(raw.stdout)["affine"]
    assert abs(fit["anamorphism"] - 0.0062) < 3 * fit["anamorphism_err"] and fit["anamorphism_err"] < 5e-4
    corrected = json.loads(runner.invoke(app, [*args, "--affine", "--no-store", "--json"]).stdout)["affine"]
    assert abs(corrected["anamorphism"]) < 3 * corrected["anamorphism_err"]
    text = runner.invoke(app, [*args, "--no-anamorphism", "--affine", "--no-store"])
    assert text.exit_code == 0 and "raw pixels" in text.output and "anamorphism +0.6" in text.output
    plain = json.loads(runner.invoke(app, [*args, "--no-store", "--json"]).stdout)
    assert "affine" not in plain  # only on request
