"""CHARA/MIRC-X raw headers (Level 0 observation log) on simulated raw files whose keywords are
those the public MIRC-X pipeline reads (hcdc.instruments.mircx): recognition, metadata from the
fast and the astropy paths alike, the pipeline's three DATE-OBS forms, clear errors, ingest."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from astropy.io import fits

from hcdc.instruments.base import MetadataError, datetime_to_mjd
from hcdc.instruments.mircx import observation_time, stations
from hcdc.instruments.mircx_simulate import MircxSetup, simulate_night
from hcdc.instruments.registry import read_file, read_metadata

START = dt.datetime(2023, 5, 12, 4, 10, 0, 250000)  # 21:10 local (UTC-7) on 2023-05-11


@pytest.fixture
def night(tmp_path: Path) -> list[Path]:
    return simulate_night(
        tmp_path / "raw", "zet Oph", START, n_data=3, setup=MircxSetup(beam_order=(2, 3, 0, 1, 4, 5))
    )


def test_a_simulated_night_is_read_as_the_pipeline_reads_it(night: list[Path]) -> None:
    classes = []
    for path in night:
        meta, header = read_file(path)
        fast, _ = read_metadata(path)
        assert fast == meta, path.name  # the fast ingest path agrees with astropy's
        assert meta.instrument == "MIRC-X" and meta.target == "zet Oph" and meta.mode == "H_PRISM50"
        assert meta.night == dt.date(2023, 5, 11)
        assert meta.dit == pytest.approx(0.004) and meta.ndit == 16
        assert meta.readout_mode == "G50-L1-R4" and meta.extra["stations"] == "E1-E2-S1-S2-W1-W2"
        # the pipeline's Linux time (TIME_S + 1e-9 TIME_US) and GPS time agree within 1 ms
        linux = header["TIME_S"] + header["TIME_US"] * 1e-9
        assert abs(linux - (meta.date_obs - dt.datetime(1970, 1, 1)).total_seconds()) < 1e-3
        assert meta.mjd_obs == pytest.approx(datetime_to_mjd(meta.date_obs))
        assert meta.mjd_end == pytest.approx(meta.mjd_obs + 16 * 0.004 / 86400)
        classes.append((meta.category, meta.file_class))
    assert (
        classes
        == [("CALIB", "BACKGROUND")]
        + [("CALIB", "BEAM_MAP")] * 6
        + [("CALIB", "FOREGROUND")]
        + [("SCIENCE", "SCIENCE")] * 3
    )


def test_date_forms_and_bad_headers(night: list[Path], tmp_path: Path) -> None:
    for form in ("2023/05/12", "05/12/2023"):
        assert observation_time({"DATE-OBS": form, "UTC-OBS": "04:10:00.250"}) == START
    assert stations({"TEL_KEY": "other"}) is None
    header = fits.getheader(night[-1])
    for key, value, message in (
        ("DATE-OBS", "12-05-2023", "DATE-OBS '12-05-2023': not YYYY-MM-DD"),
        ("UTC-OBS", "25:00:00", "UTC-OBS '25:00:00': not a time of day"),
        ("FILETYPE", "SKYFLAT", "FILETYPE 'SKYFLAT': not one of"),
        ("LASTFR", 0, "LASTFR 0 < STARTFR"),
        ("EXPOSURE", -1.0, "EXPOSURE -1.0: must be positive"),
    ):
        bad = header.copy()
        bad[key] = value
        path = tmp_path / f"bad-{key}.fits"
        fits.PrimaryHDU(header=bad).writeto(path)
        with pytest.raises(MetadataError, match=message):
            read_file(path)


def test_ingest_makes_an_observation_log(night: list[Path], tmp_path: Path) -> None:
    from sqlalchemy import select

    from hcdc.archive.db import init_data_centre
    from hcdc.archive.ingest import ingest
    from hcdc.archive.models import File

    catalogue = init_data_centre(tmp_path / "dc")
    report = ingest(catalogue, night, workers=1)
    assert report.ingested == len(night) and report.quarantined == 0
    with catalogue.engine.connect() as conn:
        rows = conn.execute(select(File.instrument, File.file_class, File.night, File.target)).all()
    assert {r.instrument for r in rows} == {"MIRC-X"} and {r.night for r in rows} == {dt.date(2023, 5, 11)}
    assert sum(r.file_class == "SCIENCE" for r in rows) == 3
    catalogue.close()


def test_mystic_files_are_told_apart_by_beamcomb(tmp_path: Path) -> None:
    """MYSTIC (BEAMCOMB = 'MYSTIC', jdmonnier/mircx_mystic setup.py) is its own instrument, with
    its band from WAVELEN/BANDWID, on the fast and the astropy paths alike; its science files'
    Level 0 granule carries that band (m)."""
    from hcdc.instruments.registry import observation_log

    setup = MircxSetup(combiner="MYSTIC", wavelength_um=2.2, bandwidth_um=0.3)
    paths = simulate_night(tmp_path / "raw", "HD 1", START, n_data=1, setup=setup)
    for path in paths:
        fast, _ = read_metadata(path)
        slow, _ = read_file(path)
        assert fast.instrument == slow.instrument == "MYSTIC", path
        assert fast.extra["wavelength_um"] == 2.2 and fast.extra["bandwidth_um"] == 0.3
    science = read_file(paths[-1])[0]
    (granule,) = observation_log(science)
    assert granule["instrument_name"] == "MYSTIC" and granule["calib_level"] == 0
    assert granule["em_min"] == pytest.approx(2.05e-6) and granule["em_max"] == pytest.approx(2.35e-6)
    assert observation_log(read_file(paths[0])[0]) == []  # a BACKGROUND: no granule
    # the default night is still MIRC-X, without the MYSTIC keywords
    mircx = read_file(simulate_night(tmp_path / "mircx", "HD 1", START, n_data=1)[-1])[0]
    assert mircx.instrument == "MIRC-X" and "wavelength_um" not in mircx.extra
    with pytest.raises(ValueError, match="combiner"):
        simulate_night(tmp_path / "bad", "HD 1", START, n_data=1, setup=MircxSetup(combiner="SPICA"))
