"""Level 0 granules from an ObsPortal VOTable (hcdc.archive.obsportal, ``hcdc oi import-obsportal``)
on SQLite and PostgreSQL: OiDB's field mapping, per-row errors that never block the other rows,
idempotent re-import by exp_id, rights through access.py (secure + collection embargo, calibrators
public), and survey tracking seeing an ISSP target as 'observed'.

The VOTable is constructed here (ObsPortal's field names from ../shared/reference/vo.md §1.5 and
interferometry.md §"L0 from ObsPortal"); the values are invented, not real exposures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hcdc.cli import app

FIELDS = (
    ("exp_id", "long", None),
    ("exp_header_id", "long", None),
    ("target_name", "char", None),
    ("target_ra", "double", "deg"),
    ("target_dec", "double", "deg"),
    ("exp_mjd_start", "double", "d"),
    ("exp_mjd_end", "double", "d"),
    ("exp_date_release", "char", None),
    ("exp_date_updated", "char", None),
    ("instrument_name", "char", None),
    ("instrument_mode", "char", None),
    ("instrument_submode", "char", None),
    ("instrument_em_min", "double", "m"),
    ("instrument_em_max", "double", "m"),
    ("instrument_em_res_power", "double", None),
    ("interferometer_name", "char", None),
    ("interferometer_stations", "char", None),
    ("obs_program", "char", None),
    ("obs_type", "char", None),
    ("obs_program_pi_coi", "char", None),
)
NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None)
MJD_RECENT = round((NOW - dt.datetime(1858, 11, 17)).days - 30 + 0.2, 3)  # 30 days ago: embargoed


def _row(exp_id: int, target: str, mjd: float | str, **extra: str) -> dict[str, str]:
    start = float(mjd) if not isinstance(mjd, str) else mjd
    row = {
        "exp_id": str(exp_id),
        "exp_header_id": str(1000 + exp_id),
        "target_name": target,
        "target_ra": "84.0533",
        "target_dec": "-1.2019",
        "exp_mjd_start": str(start),
        "exp_mjd_end": str(round(float(start) + 0.004, 6)) if not isinstance(start, str) else "60001.0",
        "exp_date_release": "",
        "exp_date_updated": "2026-11-02T10:00:00",
        "instrument_name": "SPICA",
        "instrument_mode": "MR",
        "instrument_submode": "6T",
        "instrument_em_min": "6.0e-07",
        "instrument_em_max": "8.5e-07",
        "instrument_em_res_power": "4000",
        "interferometer_name": "CHARA",
        "interferometer_stations": "S1-S2-E1-E2-W1-W2",
        "obs_program": "ISSP",
        "obs_type": "science",
        "obs_program_pi_coi": "Mourard/Nardetto",
    }
    row.update(extra)
    return row


def write_votable(path: Path, rows: list[dict[str, str]], fields_of: tuple = FIELDS) -> Path:
    """A VOTable 1.3 with ObsPortal's exposure fields (TABLEDATA); ``fields_of``: (name,
    datatype, unit) of each FIELD."""
    fields = "\n".join(
        f'<FIELD name="{name}" datatype="{kind}"'
        + (' arraysize="*"' if kind == "char" else "")
        + (f' unit="{unit}"' if unit else "")
        + "/>"
        for name, kind, unit in fields_of
    )
    body = "\n".join(
        "<TR>" + "".join(f"<TD>{row.get(name, '')}</TD>" for name, _, _ in fields_of) + "</TR>"
        for row in rows
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>\n'
        f"{fields}\n<DATA><TABLEDATA>\n{body}\n</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>\n"
    )
    return path


def exposures() -> list[dict[str, str]]:
    return [
        _row(101, "HD 37128", MJD_RECENT, exp_date_release="2030-01-01T00:00:00"),
        _row(102, "", MJD_RECENT + 0.01),  # empty target name -> '-'
        _row(103, "HD 37128", MJD_RECENT + 0.02, instrument_em_min="", instrument_em_max="",
             instrument_em_res_power="", instrument_submode=""),  # missing em_*, no submode
        _row(104, "HD 37128", "60a12.5"),  # malformed MJD
        _row(105, "HD 36673", MJD_RECENT + 0.03, obs_type="calib"),  # a calibrator: public (R11)
        _row(106, "HD 1", MJD_RECENT + 0.05, exp_mjd_end=str(MJD_RECENT)),  # ends before it starts
    ]  # fmt: skip


def _cli(catalogue, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--root", str(catalogue.settings.root)])
    return result.exit_code, result.stdout, result.stderr


def test_import_mapping_errors_idempotence_rights_and_survey(catalogue, tmp_path: Path) -> None:
    from sqlalchemy import func, select, true

    from hcdc.archive import accounts
    from hcdc.archive.access import ANONYMOUS, AccessContext, local_operator
    from hcdc.archive.granules import GranuleRow, list_granules
    from hcdc.archive.interferometry import CollectionSpec, add_collection
    from hcdc.archive.interferometry_survey import import_targets, survey_status

    admin = local_operator()
    survey = tmp_path / "issp.csv"
    survey.write_text("name\nHD 37128\nHD 99999\n")
    with catalogue.engine.begin() as conn:
        add_collection(conn, admin, CollectionSpec("issp_l0", "chara", calib_level=0))
        accounts.add_group(conn, admin, "spica")
        import_targets(conn, admin, "issp", str(survey), group="spica")
        before = survey_status(conn, admin, "issp")
    assert {i["name"]: i["stage"] for i in before["items"]} == {"HD 37128": "planned", "HD 99999": "planned"}

    votable = write_votable(tmp_path / "spica.vot", exposures())
    code, out, err = _cli(catalogue, "oi", "import-obsportal", str(votable), "--json")
    assert code == 1, err  # two rows rejected, the other four imported
    report = json.loads(out)
    assert (report["rows"], report["added"], report["updated"], report["unchanged"]) == (6, 4, 0, 0)
    assert report["collection"] == "issp_l0" and report["last_updated"] == "2026-11-02T10:00:00"
    assert len(report["errors"]) == 2
    bad_mjd, bad_order = report["errors"]
    assert bad_mjd.startswith(f"{votable} row 4 (exp_id 104): exp_mjd_start")
    assert any("60a12.5" in w for w in report["warnings"])  # astropy says where the bad cell is
    assert bad_order.startswith(f"{votable} row 6 (exp_id 106): exp_mjd_end") and "before" in bad_order

    with catalogue.engine.begin() as conn:
        granules = {g["obs_id"]: g for g in list_granules(conn, visible=true())}
    assert set(granules) == {"101", "102", "103", "105"}
    g = granules["101"]
    assert (g["calib_level"], g["file"], g["collection"]) == (0, None, "issp_l0")
    assert (g["target_name"], g["instrument_name"], g["facility_name"]) == ("HD 37128", "SPICA", "CHARA")
    assert (g["s_ra"], g["s_dec"]) == (84.0533, -1.2019)
    assert g["t_min"] == MJD_RECENT and g["t_exptime"] == pytest.approx((g["t_max"] - g["t_min"]) * 86400)
    assert g["t_exptime"] == pytest.approx(345.6)
    assert (g["em_min"], g["em_max"], g["em_res_power"]) == (6.0e-07, 8.5e-07, 4000.0)
    assert (g["instrument_mode"], g["interferometer_stations"]) == ("MR_6T", "S1-S2-E1-E2-W1-W2")
    assert (g["progid"], g["datapi"], g["dataproduct_category"]) == ("ISSP", "Mourard/Nardetto", "SCIENCE")
    assert (g["nb_channels"], g["nb_vis"], g["nb_vis2"], g["nb_t3"]) == (-1, 0, 0, 0)
    assert g["access_url"] == "https://obs.jmmc.fr/detail/exposure/101"
    # secure, released at the later of t_max + 18 months (chara) and exp_date_release
    assert g["data_rights"] == "secure" and g["obs_release_date"] == dt.datetime(2030, 1, 1)
    assert granules["102"]["target_name"] == "-"
    third = granules["103"]
    assert (third["em_min"], third["em_max"], third["em_res_power"], third["instrument_mode"]) == (
        None, None, None, "MR",
    )  # fmt: skip
    assert granules["105"]["dataproduct_category"] == "CALIB"
    assert granules["102"]["obs_release_date"] > NOW  # the 18-month embargo from t_max

    with catalogue.engine.begin() as conn:
        public = list_granules(conn, visible=AccessContext(conn, ANONYMOUS).granules_clause())
        assert [p["obs_id"] for p in public] == ["105"]  # R11: calibrators public, science embargoed
        status = survey_status(conn, admin, "issp")
    stages = {i["name"]: i["stage"] for i in status["items"]}
    assert stages == {"HD 37128": "observed", "HD 99999": "planned"}
    code, out, _ = _cli(catalogue, "granules", "--level", "0")  # the table names the exposure
    assert code == 0 and "Granules (4)" in out and "101" in out

    # re-import: same exp_id updates, never duplicates; unchanged rows are not rewritten
    code, out, _ = _cli(catalogue, "oi", "import-obsportal", str(votable), "--json")
    again = json.loads(out)
    assert (again["added"], again["updated"], again["unchanged"], len(again["errors"])) == (0, 0, 4, 2)
    fixed = exposures()
    fixed[0]["target_name"] = "HD 37128 A"
    fixed[3] = _row(104, "HD 37128", MJD_RECENT + 0.04)
    del fixed[5]
    newer = write_votable(tmp_path / "spica-newer.vot", fixed)
    code, out, _ = _cli(catalogue, "oi", "import-obsportal", str(newer), "--json")
    assert code == 0
    third_run = json.loads(out)
    assert (third_run["added"], third_run["updated"], third_run["unchanged"]) == (1, 1, 3)
    with catalogue.engine.begin() as conn:
        assert conn.scalar(select(func.count()).select_from(GranuleRow)) == 5
        renamed = list_granules(conn, visible=true(), target="37128 A")
        assert [r["obs_id"] for r in renamed] == ["101"]


def test_refusals_and_bad_files(catalogue, tmp_path: Path) -> None:
    from hcdc.archive.access import local_operator
    from hcdc.archive.interferometry import CollectionSpec, add_collection

    votable = write_votable(tmp_path / "spica.vot", exposures()[:1])
    code, _, err = _cli(catalogue, "oi", "import-obsportal", str(votable))
    assert code == 2 and "no collection called 'issp_l0'" in err
    with catalogue.engine.begin() as conn:
        add_collection(conn, local_operator(), CollectionSpec("vlti", "eso"))
    code, out, err = _cli(catalogue, "oi", "import-obsportal", str(votable), "--collection", "vlti")
    assert code == 0 and "1 added" in out

    not_xml = tmp_path / "log.vot"
    not_xml.write_text("exp_id,target_name\n1,HD 1\n")
    code, _, err = _cli(catalogue, "oi", "import-obsportal", str(not_xml), "--collection", "vlti")
    assert code == 2 and str(not_xml) in err and "not a readable VOTable" in err
    no_mjd = tmp_path / "no_mjd.vot"
    no_mjd.write_text(
        '<?xml version="1.0"?><VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
        '<RESOURCE><TABLE><FIELD name="exp_id" datatype="long"/><FIELD name="instrument_name" '
        'datatype="char" arraysize="*"/><DATA><TABLEDATA><TR><TD>1</TD><TD>SPICA</TD></TR>'
        "</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
    )
    code, _, err = _cli(catalogue, "oi", "import-obsportal", str(no_mjd), "--collection", "vlti")
    assert code == 2 and "missing field(s) exp_mjd_start, exp_mjd_end" in err


def test_units_and_sync_windows(tmp_path: Path) -> None:
    from hcdc.archive.obsportal import ObsPortalError, granule_of_row, query_url, sync_windows

    row = _row(7, "HD 1", 60000.25, instrument_em_min="0.6", instrument_em_max="0.85")
    granule = granule_of_row(row, {"instrument_em_min": "um", "instrument_em_max": "um"})
    assert granule["em_min"] == pytest.approx(6.0e-07) and granule["em_max"] == pytest.approx(8.5e-07)
    assert granule["night_id"] == 60000
    with pytest.raises(ObsPortalError, match="instrument_em_min = 0.6 m is not a wavelength"):
        granule_of_row(row)  # 0.6 m: micrometres without a unit
    with pytest.raises(ObsPortalError, match="exp_date_release = 'soon'"):
        granule_of_row(_row(8, "HD 1", 60000.25, exp_date_release="soon"))

    windows = sync_windows(dt.datetime(2024, 1, 1), dt.datetime(2026, 7, 1))
    assert (
        len(windows) == 3
        and windows[0][0] == dt.datetime(2024, 1, 1)
        and windows[-1][1] == dt.datetime(2026, 7, 1)
    )
    assert all(b - a <= dt.timedelta(days=365) for a, b in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(2))
    url = query_url(*windows[0])
    assert url.startswith("https://obs.jmmc.fr/search.votable?instrument=SPICA&date_updated_from=2024-01-01")
    with pytest.raises(ObsPortalError):
        sync_windows(dt.datetime(2026, 1, 1), dt.datetime(2025, 1, 1))


def test_portal_and_api_show_a_level0_granule_without_a_file(catalogue, tmp_path: Path) -> None:
    """The granule listing (API and page) and the granule page work for a granule without a
    file: no download offered but a link to the exposure at its source (http(s) only), the file
    route answers 404 (nothing to download)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from hcdc.archive.access import local_operator
    from hcdc.archive.granules import GranuleRow
    from hcdc.archive.interferometry import CollectionSpec, add_collection
    from hcdc.archive.obsportal import import_obsportal
    from hcdc.web.app import create_app

    with catalogue.engine.begin() as conn:
        add_collection(conn, local_operator(), CollectionSpec("issp_l0", "chara", calib_level=0))
        import_obsportal(conn, local_operator(), write_votable(tmp_path / "s.vot", exposures()[4:5]))
        calibrator = conn.scalar(select(GranuleRow.id))
    client = TestClient(create_app(catalogue=catalogue, secret_key="test-secret"))
    api = client.get("/api/v1/granules").json()
    assert [(i["obs_id"], i["file"], i["calib_level"]) for i in api["items"]] == [("105", None, 0)]
    assert client.get("/granules").status_code == 200
    page = client.get(f"/granules/{calibrator}")
    assert page.status_code == 200 and 'id="no-file"' in page.text and "HD 36673" in page.text
    assert 'id="no-download"' not in page.text
    assert 'href="https://obs.jmmc.fr/detail/exposure/105"' in page.text
    # an access URL of another scheme (from a hostile VOTable) is never made a link
    with catalogue.engine.begin() as conn:
        conn.execute(GranuleRow.__table__.update().values(access_url="javascript:alert(1)"))
    page = client.get(f"/granules/{calibrator}")
    assert 'id="no-file"' in page.text and 'id="access-url"' not in page.text
    assert "javascript:" not in page.text
