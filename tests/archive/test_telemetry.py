"""SPARTA files in the catalogue: association with science datasets (OB, time, night,
maintenance), the worker's inputs, the night overview with access rights, and
``hcdc monitor night`` -- on a simulated night with known conditions and on the real IFS night."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select
from typer.testing import CliRunner

from hcdc.archive.access import ANONYMOUS, local_operator
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset, File
from hcdc.archive.telemetry import night_overview, telemetry_file_ids
from hcdc.cli import app
from hcdc.instruments.sphere.sparta import read_sparta, write_sparta
from hcdc.pipeline.operations.worker import dataset_files

from .night import SCIENCE, build_night

NIGHT = dt.date(2018, 11, 30)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Both default sequences (DBI then CI, two OBs) with SPARTA files; plus a maintenance file
    overlapping the first OB and a SPARTA file of the next night."""
    from hcdc.instruments.sphere.irdis.simulate import simulate_irdis_night

    folder = tmp_path_factory.mktemp("sim")
    night = simulate_irdis_night(folder / "raw", seed=21, ao_telemetry=True)
    first = read_sparta(night.ao_telemetry.files[0])
    header = fits.getheader(night.ao_telemetry.files[0])
    atm = {"mjd": first.atm_mjd, "r0_m": first.r0_m, "wind_m_s": first.wind_m_s, "strehl": first.strehl}
    maintenance = header.copy()
    maintenance["HIERARCH ESO OBS PROG ID"] = "Maintenance"
    maintenance["HIERARCH ESO OBS ID"] = 0
    maintenance["DATE-OBS"] = header["DATE-OBS"][:-4] + "1234"
    write_sparta(folder / "raw" / "maintenance.fits", maintenance, atm)
    later = header.copy()
    later["DATE-OBS"] = "2018-12-02T04:18:48.4370"
    later["HIERARCH ESO OBS ID"] = 1
    write_sparta(folder / "raw" / "next_night.fits", later, atm | {"mjd": first.atm_mjd + 1.0})
    return night


def _ids(conn) -> dict[str, int]:
    return {Path(p).name: i for i, p in conn.execute(select(File.id, File.path))}


def test_sparta_files_are_associated_by_ob_and_time(catalogue, simulated):
    summary = ingest(catalogue, [simulated.out_dir], workers=1)
    assert summary.quarantined == 0
    files = simulated.ao_telemetry.files
    with catalogue.engine.connect() as conn:
        ids = _ids(conn)
        datasets = {key: i for i, key in conn.execute(select(Dataset.id, Dataset.key))}
        assert len(datasets) == 2  # the SPARTA files form no dataset
        by_ob = {}
        for path in files:
            by_ob.setdefault(fits.getheader(path)["HIERARCH ESO OBS ID"], []).append(ids[path.name])
        assert len(by_ob) == 2
        for key, dataset_id in datasets.items():
            ob = int(key.split("/OB")[1].split("/")[0])
            chosen = telemetry_file_ids(conn, dataset_id)
            # its own OB's files only: never the other OB's, the maintenance or next night's file
            assert chosen == sorted(by_ob[ob])
            inputs = dataset_files(conn, dataset_id, catalogue.storage_root)
            sparta = [ref.id for ref, meta in inputs if meta.file_class == "AO_TELEMETRY"]
            assert sorted(sparta) == sorted(by_ob[ob])


def test_night_overview_series_sequences_and_rights(catalogue, simulated):
    ingest(catalogue, [simulated.out_dir], workers=1)
    telemetry = simulated.ao_telemetry
    written = telemetry.written_mask()
    valid_written = int((written & ~telemetry.invalid).sum())
    with catalogue.engine.connect() as conn:
        overview = night_overview(conn, local_operator(), NIGHT, catalogue.storage_root)
        # in 2019 the 2018 programme was still proprietary: anonymous sees nothing of it
        hidden = night_overview(conn, ANONYMOUS, NIGHT, catalogue.storage_root, now=dt.datetime(2019, 1, 1))
        public = night_overview(conn, ANONYMOUS, NIGHT, catalogue.storage_root, now=dt.datetime(2026, 1, 1))
    assert len(overview.telemetry_files) == len(telemetry.files)  # not the maintenance file
    assert overview.series["mjd"].size == valid_written
    assert int(overview.series["rejected"][0]) == int((written & telemetry.invalid).sum())
    truth = telemetry.truth_at(overview.series["mjd"])
    np.testing.assert_allclose(overview.series["strehl"], truth["strehl"], rtol=0.1)
    assert [s["filter"] for s in overview.sequences] == ["DB_H23", "BB_H"]
    for seq, window in zip(overview.sequences, telemetry.windows, strict=True):
        assert seq["mjd_start"] == pytest.approx(window.start.mjd, abs=1e-6)
        assert seq["ambient_seeing"] is not None  # TEL AMBI FWHM of the simulated headers
    assert hidden.telemetry_files == [] and hidden.sequences == [] and hidden.series["mjd"].size == 0
    assert len(public.telemetry_files) == len(telemetry.files)
    summary = overview.summary()
    assert summary["strehl_median"] == pytest.approx(np.median(overview.series["strehl"]))


def test_monitor_night_command(catalogue, simulated, tmp_path):
    ingest(catalogue, [simulated.out_dir], workers=1)
    root = ["--root", str(catalogue.settings.root)]
    png = tmp_path / "night.png"
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", "night", "2018-11-30", "--json", "--png", str(png), *root])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["night"] == "2018-11-30" and len(payload["sequences"]) == 2
    assert payload["summary"]["samples"] == len(payload["series"]["mjd"]) > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = runner.invoke(app, ["monitor", "night", "2018-11-30", *root])
    assert text.exit_code == 0 and "SPARTA file(s)" in text.stdout and "DB_H23" in text.stdout
    bad = runner.invoke(app, ["monitor", "night", "30/11/2018", *root])
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output
    empty = runner.invoke(app, ["monitor", "night", "2018-06-01", "--json", *root])
    assert json.loads(empty.stdout)["summary"]["samples"] == 0


def test_real_ifs_night_gets_the_telemetry_of_its_ob(catalogue, sphere_headers, tmp_path):
    """The real IFS sequence of 2020-03-08 (OB of the real headers) with a SPARTA file written
    for its OB and time: associated; a SPARTA file of another OB two hours later is not."""
    files = build_night(sphere_headers, tmp_path / "night")
    science = sphere_headers[SCIENCE[1]]
    start = dt.datetime.fromisoformat(sphere_headers[SCIENCE[0]]["DATE-OBS"])
    mjd = (
        58916.0
        + (start - dt.datetime(2020, 3, 8)).total_seconds() / 86400.0
        + np.arange(0, 2700, 30) / 86400.0
    )
    n = mjd.size
    atm = {"mjd": mjd, "r0_m": np.full(n, 0.07), "wind_m_s": np.full(n, 9.4), "strehl": np.full(n, 0.6)}
    header = fits.Header()
    for key in (
        "INSTRUME",
        "RA",
        "DEC",
        "HIERARCH ESO OBS ID",
        "HIERARCH ESO OBS PROG ID",
        "HIERARCH ESO OBS NAME",
    ):
        header[key] = science[key]
    header["DATE-OBS"] = start.isoformat()
    header["HIERARCH ESO DPR CATG"] = "SCIENCE"
    header["HIERARCH ESO DPR TYPE"] = "OBJECT,AO"
    write_sparta(tmp_path / "night" / "sparta_ob.fits", header, atm)
    other = header.copy()
    other["HIERARCH ESO OBS ID"] = 1
    other["DATE-OBS"] = (start + dt.timedelta(hours=2)).isoformat()
    write_sparta(tmp_path / "night" / "sparta_other.fits", other, atm | {"mjd": mjd + 2 / 24})
    summary = ingest(catalogue, [tmp_path / "night"], workers=1)
    assert (summary.ingested, summary.quarantined) == (len(files) + 2, 0)
    with catalogue.engine.connect() as conn:
        ids = _ids(conn)
        (dataset_id,) = conn.scalars(select(Dataset.id))
        assert telemetry_file_ids(conn, dataset_id) == [ids["sparta_ob.fits"]]
        overview = night_overview(conn, local_operator(), dt.date(2020, 3, 7), catalogue.storage_root)
    (seq,) = overview.sequences
    assert seq["files"] == len(SCIENCE)
    # the real headers' ESO DIMM seeing (TEL AMBI FWHM START/END) is there for comparison
    real = sorted(
        (h["HIERARCH ESO TEL AMBI FWHM START"] + h["HIERARCH ESO TEL AMBI FWHM END"]) / 2
        for h in (sphere_headers[name] for name in SCIENCE)
    )
    assert sorted(v for _, v in overview.ambient) == pytest.approx(real)
    # r0 = 0.07 m -> 1.473" along the line of sight; zenith through the real airmass 1.06-1.13
    first = overview.series["mjd"] < mjd[-1] + 1e-6  # the OB's file (the other is 2 h later)
    assert first.sum() == n
    assert overview.series["seeing"][0] == pytest.approx(0.5e-6 / 0.07 * 206264.806, rel=1e-5)
    airmass = overview.series["airmass"][first]
    assert airmass[0] == pytest.approx(sphere_headers[SCIENCE[0]]["HIERARCH ESO TEL AIRM START"], abs=0.002)
    assert 1.05 < airmass.min() and airmass.max() < 1.16
    np.testing.assert_allclose(
        overview.series["seeing_zenith"][first], overview.series["seeing"][first] * airmass**-0.6
    )
