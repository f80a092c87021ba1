"""Per-DIT AO conditions of an IFS science dataset from SPARTA files associated with it (no
Level 1 product needed): on the real IFS night (real headers), with a SPARTA file written for
its OB whose Strehl and r0 rise linearly, every DIT gets the known values; without the file,
every DIT says it has no telemetry (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time
from sqlalchemy import select
from typer.testing import CliRunner

from hcdc.archive.access import local_operator
from hcdc.archive.associations import associate_all
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset
from hcdc.archive.telemetry import dataset_frame_conditions
from hcdc.cli import app
from hcdc.instruments.sphere.sparta import write_sparta

from .night import SCIENCE, build_night


def _sparta(science: fits.Header, path, start_mjd: float, end_mjd: float) -> dict[str, np.ndarray]:
    mjd = np.arange(start_mjd, end_mjd, 30.0 / 86400.0)
    x = (mjd - start_mjd) / (end_mjd - start_mjd)
    atm = {"mjd": mjd, "r0_m": 0.10 + 0.05 * x, "wind_m_s": np.full(mjd.size, 10.0), "strehl": 0.6 + 0.3 * x}
    h = fits.Header()
    h["INSTRUME"] = "SPHERE"
    h["TELESCOP"] = "ESO-VLT-U3"
    h["RA"], h["DEC"] = science["RA"], science["DEC"]
    h["MJD-OBS"] = float(mjd[0])
    h["DATE-OBS"] = Time(mjd[0], format="mjd", scale="utc").isot
    for key in ("OBS ID", "OBS NAME", "OBS PROG ID"):
        h[f"HIERARCH ESO {key}"] = science[f"HIERARCH ESO {key}"]
    h["HIERARCH ESO DPR CATG"] = "SCIENCE"
    h["HIERARCH ESO DPR TYPE"] = "OBJECT,AO"
    h["HIERARCH ESO DPR TECH"] = "IMAGE"
    write_sparta(path, h, atm)
    return atm


def test_ifs_dataset_gets_per_dit_conditions(catalogue, sphere_headers, tmp_path):
    build_night(sphere_headers, tmp_path / "night")
    ingest(catalogue, [tmp_path / "night"], workers=1)
    associate_all(catalogue.engine)
    with catalogue.engine.connect() as conn:
        (dataset_id,) = conn.scalars(select(Dataset.id).where(Dataset.mode.like("%IFS%"))).all()
        before = dataset_frame_conditions(conn, local_operator(), dataset_id, catalogue.storage_root)
    assert before["telemetry_files"] == 0 and before["frames"]
    assert all(f["no_telemetry"] and f["strehl"] is None for f in before["frames"])
    first = sphere_headers[SCIENCE[0]]
    t0 = Time(first["DATE-OBS"], scale="utc").mjd - 120 / 86400
    t1 = t0 + 3600 / 86400
    (tmp_path / "ao").mkdir()
    atm = _sparta(first, tmp_path / "ao" / "SPHER.2020-03-08T07_03_00.000.fits", t0, t1)
    assert ingest(catalogue, [tmp_path / "ao"], workers=1).quarantined == 0
    with catalogue.engine.connect() as conn:
        after = dataset_frame_conditions(conn, local_operator(), dataset_id, catalogue.storage_root)
    assert after["telemetry_files"] == 1 and after["sampling_interval_s"] == pytest.approx(30.0, abs=0.01)
    frames = [f for f in after["frames"] if t0 < f["mjd"] < t1]
    assert frames and all(not f["no_telemetry"] for f in frames)
    mjd = np.array([f["mjd"] for f in frames])
    np.testing.assert_allclose(
        [f["strehl"] for f in frames], np.interp(mjd, atm["mjd"], atm["strehl"]), rtol=1e-5
    )
    np.testing.assert_allclose(
        [f["r0_m"] for f in frames], np.interp(mjd, atm["mjd"], atm["r0_m"]), rtol=1e-5
    )
    # seeing = 500 nm / r0; tau0 = 0.314 r0 / v
    for f in frames:
        assert f["seeing_arcsec"] == pytest.approx(5e-7 / f["r0_m"] * 206264.806, rel=1e-5)
        assert f["tau0_s"] == pytest.approx(0.314 * f["r0_m"] / 10.0, rel=1e-4)
    root = ["--root", str(catalogue.settings.root)]
    shown = CliRunner().invoke(app, ["monitor", "dataset", f"d{dataset_id}", "--json", *root])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["frames"] == json.loads(
        json.dumps(after["frames"])
    )
    text = CliRunner().invoke(app, ["monitor", "dataset", str(dataset_id), *root])
    assert text.exit_code == 0 and "1 SPARTA file(s)" in text.stdout
    missing = CliRunner().invoke(app, ["monitor", "dataset", "d99999", *root])
    assert missing.exit_code != 0 and "no dataset with id 99999" in missing.output
