"""MIRC-X raw science files are Level 0 granules (OiDB's observation log, hcdc.instruments.mircx
``observation_log``) on SQLite and PostgreSQL: one per DATA file, none for calibration files, in
the collection whose rules match, never versions of one another; a survey target observed with
raw data only reaches 'observed'."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hcdc.instruments.mircx_simulate import MircxSetup, simulate_night

START = dt.datetime(2023, 5, 12, 4, 10, 0, 250000)


@pytest.fixture
def night(tmp_path: Path) -> list[Path]:
    return simulate_night(
        tmp_path / "raw", "zet Oph", START, n_data=3, setup=MircxSetup(beam_order=(2, 3, 0, 1, 4, 5))
    )


def test_science_raw_files_are_level0_granules_and_a_survey_target_is_observed(
    night: list[Path], tmp_path: Path, catalogue
) -> None:
    """Each DATA file is one L0 granule (OiDB's observation log); calibration files none; a
    survey target observed with raw data only reaches 'observed' (not 'reduced')."""
    from sqlalchemy import true

    from hcdc.archive import accounts
    from hcdc.archive.access import local_operator
    from hcdc.archive.granules import list_granules
    from hcdc.archive.ingest import ingest
    from hcdc.archive.interferometry import CollectionSpec, add_collection
    from hcdc.archive.interferometry_survey import import_targets, survey_status

    admin = local_operator()
    with catalogue.engine.begin() as conn:
        add_collection(
            conn,
            admin,
            CollectionSpec("chara-l0", "chara", calib_level=0, facility="CHARA", instrument="MIRC-X"),
        )
    assert ingest(catalogue, night, workers=1).ingested == len(night)
    with catalogue.engine.begin() as conn:
        granules = list_granules(conn, visible=true())
        assert len(granules) == 3
        for g in granules:
            assert (g["calib_level"], g["instrument_name"], g["facility_name"]) == (0, "MIRC-X", "CHARA")
            assert g["target_name"] == "zet Oph" and g["collection"] == "chara-l0"
            assert g["t_max"] > g["t_min"] and g["t_exptime"] > 0
            assert g["nb_vis2"] == 0
        accounts.add_group(conn, admin, "team")
        survey = tmp_path / "targets.csv"
        survey.write_text("name\nzet Oph\nHD 1\n")
        import_targets(conn, admin, "issp", survey, group="team")
        status = survey_status(conn, admin, "issp")
    stages = {item["name"]: item["stage"] for item in status["items"]}
    assert stages == {"zet Oph": "observed", "HD 1": "planned"}
