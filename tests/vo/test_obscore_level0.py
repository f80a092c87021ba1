"""Every granule is an ObsCore row (issue 14), Level 0 observation logs without a file included:
ObsPortal exposures and MIRC-X raw files, with OiDB's column conventions, kept in sync by the
import, and visible exactly when access.py lets the caller see the granule (SQLite and
PostgreSQL, before and after the embargo ends; tests/web/oi_world.py's collections).

Also checked through TAP (/tap/sync, ADQL on ivoa.obscore) and DataLink; pyvo and taplint see the
same rows on a live server in tests/vo/test_taplint.py."""

from __future__ import annotations

import io
from urllib.parse import quote

import pytest
from astropy.io.votable import parse
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from web.oi_world import LEVEL0, LEVEL0_MJD, add_interferometry, add_level0
from web.world import AFTER, BEFORE, USERS

from hcdc.archive.access import AccessContext, datetime_of_mjd, load_principal, local_operator
from hcdc.archive.identifiers import parse_publisher_did, publisher_did, vo_authority
from hcdc.archive.interferometry_models import GranuleRow
from hcdc.archive.obscore import (
    DATALINK_FORMAT,
    SOURCE_PAGE_FORMAT,
    ObsCoreRow,
    published_select,
    rebuild_obscore,
    sync_granule_rows,
)
from hcdc.web.app import create_app

AUTHORITY = "hcdc.test"


@pytest.fixture
def oi(world, shared_data, tmp_path):
    """The VO world (its ObsCore rebuilt) with the OIFITS files in their collections and one
    ObsPortal exposure per access state (no rebuild afterwards: the import keeps ObsCore)."""
    oi = add_interferometry(world, shared_data, tmp_path)
    oi.level0 = add_level0(world, oi, tmp_path)
    return oi


def _rows(conn, user_name: str | None, when) -> dict[int, dict]:
    """The granule rows ``user_name`` sees at ``when``, by granule id."""
    user = load_principal(conn, user_name or "public")
    out = {}
    for row in conn.execute(
        published_select(user, when, authority=AUTHORITY, base_url="http://x/vo")
    ).mappings():
        did = parse_publisher_did(row["obs_publisher_did"], AUTHORITY)
        if did.kind == "granule":
            out[did.key] = dict(row)
    return out


def _stored(conn) -> dict[tuple[str, int], tuple]:
    columns = [c for c in ObsCoreRow.__table__.columns if c.name != "id"]
    return {(r.hcdc_kind, r.hcdc_key): tuple(r) for r in conn.execute(select(*columns))}


def test_level0_rows_follow_oidb_conventions(world, oi) -> None:
    with world.catalogue.engine.connect() as conn:
        before = _rows(conn, "admin", BEFORE)
        after = _rows(conn, "admin", AFTER)
        access = AccessContext(conn, local_operator(), BEFORE)
        for number, (label, (collection, exp_id, kind, array, dp_id)) in enumerate(LEVEL0.items()):
            gid = oi.level0[label]
            row = before[gid]
            assert (row["calib_level"], row["obs_id"], row["obs_collection"]) == (0, exp_id, collection), (
                label
            )
            assert row["dataproduct_type"] == "visibility" and row["dataproduct_subtype"] == kind.upper()
            assert (row["facility_name"], row["instrument_name"]) == (array, "SPICA")
            assert row["t_min"] == pytest.approx(LEVEL0_MJD + number * 0.01)
            assert row["t_max"] == pytest.approx(row["t_min"] + 0.004)
            assert row["t_exptime"] == pytest.approx(0.004 * 86400)
            assert (row["em_min"], row["em_max"], row["em_res_power"]) == (6.0e-7, 8.5e-7, 4000.0)
            assert row["em_xel"] is None and row["access_estsize"] is None  # OiDB's nb_channels -1; no file
            assert row["target_name"] == f"L0 target {label}" and row["s_ra"] == pytest.approx(84.0533)
            assert row["s_region"].startswith("POLYGON ICRS ")
            assert row["access_format"] == SOURCE_PAGE_FORMAT
            if dp_id:  # VLTI with ESO's DP.ID: the ESO archive's query of the exposure (OiDB's link)
                expected = f"http://archive.eso.org/wdb/wdb/eso/eso_archive_main/query?dp_id={dp_id}"
            else:
                expected = f"https://obs.jmmc.fr/detail/exposure/{exp_id}"
            assert row["access_url"] == expected, label
            assert row["obs_release_date"] == access.granule_publication(gid)[1], label
        rights = {
            label: (before[g]["data_rights"], after[g]["data_rights"]) for label, g in oi.level0.items()
        }
        assert rights == {
            "l0-embargoed": ("secure", "public"),  # OiDB's 'secure' until the embargo ends
            "l0-calibrator": ("public", "public"),  # R11: public at once, from its observation
            "l0-private": ("secure", "secure"),  # its exp_date_release is in 2100
            "l0-open": ("public", "public"),
        }
        assert before[oi.level0["l0-calibrator"]]["obs_release_date"] == datetime_of_mjd(LEVEL0_MJD + 0.01)
        # the OIFITS files' granules are rows of their collections too, released by the granule rules
        for label, granules in oi.granules.items():
            if label.startswith("l0-"):
                continue
            for gid in granules:
                assert before[gid]["calib_level"] == 2 and before[gid]["access_format"] == DATALINK_FORMAT
                assert before[gid]["obs_collection"].startswith("oi-")
                assert before[gid]["obs_release_date"] == access.granule_publication(gid)[1]
        stored = _stored(conn)
    with world.catalogue.engine.begin() as conn:  # the stored rows are what a rebuild makes
        summary = rebuild_obscore(conn)
        assert _stored(conn) == stored
    assert summary.granules == sum(len(g) for g in oi.granules.values())


@pytest.mark.parametrize("when", [BEFORE, AFTER], ids=["before", "after"])
def test_every_user_sees_exactly_the_granules_access_allows(world, oi, when) -> None:
    tap = TestClient(create_app(catalogue=world.catalogue, clock=lambda: when, secret_key="t"))
    level0 = set(oi.level0.values())
    with world.catalogue.engine.connect() as conn:
        files = dict(conn.execute(select(GranuleRow.id, GranuleRow.file_id)).all())
        for name in [None, *USERS]:
            access = AccessContext(conn, load_principal(conn, name or "public"), when)
            seen = _rows(conn, name, when)
            expected = {
                g
                for g, file_id in files.items()  # a granule of a file is published with its file (R14)
                if (access.can_see_granule(g) if file_id is None else access.can_see_file(file_id))
            }
            assert set(seen) == expected, name
            if name is not None:
                tap.headers["Authorization"] = f"Bearer {world.tokens[name]}"
            response = tap.post(
                "/tap/sync",
                data={
                    "LANG": "ADQL",
                    "QUERY": "SELECT obs_publisher_did, obs_id FROM ivoa.obscore WHERE calib_level = 0",
                },
            )
            assert response.status_code == 200, response.text
            table = parse(io.BytesIO(response.content)).get_first_table().to_table()
            dids = [parse_publisher_did(str(d)) for d in table["obs_publisher_did"]]
            got = {d.key for d in dids if d.kind == "granule"}  # (raw files are calib_level 0 too)
            assert got == expected & level0, name
    anonymous_before = {oi.level0["l0-calibrator"], oi.level0["l0-open"]}
    if when == BEFORE:
        with world.catalogue.engine.connect() as conn:
            assert set(_rows(conn, "admin", when)) >= level0
            assert set(_rows(conn, None, when)) & level0 == anonymous_before
            assert oi.level0["l0-embargoed"] in _rows(conn, "delegate", when)  # R13: a grant
            assert oi.level0["l0-private"] in _rows(conn, "other_pi", when)  # its data PI
            assert oi.level0["l0-private"] not in _rows(conn, "owner", when)


def test_a_link_of_another_scheme_is_never_published(world, oi) -> None:
    """An access URL that is not http(s) (a hostile VOTable) leaves the row on DataLink."""
    gid = oi.level0["l0-open"]
    with world.catalogue.engine.begin() as conn:
        conn.execute(update(GranuleRow).where(GranuleRow.id == gid).values(access_url="javascript:alert(1)"))
        assert sync_granule_rows(conn, [gid]) == 1
    with world.catalogue.engine.connect() as conn:
        row = _rows(conn, None, BEFORE)[gid]
    assert row["access_format"] == DATALINK_FORMAT
    assert row["access_url"] == f"http://x/vo/datalink?ID={quote(row['obs_publisher_did'], safe='')}"


def test_a_reimport_updates_the_row_and_datalink_answers_for_the_exposure(world, oi, tmp_path) -> None:
    from archive.test_obsportal_level0 import FIELDS, _row, write_votable

    from hcdc.archive.obsportal import import_obsportal

    collection, exp_id, _kind, _array, _dp = LEVEL0["l0-embargoed"]
    fields = tuple((n, "char" if n in ("exp_id", "exp_header_id") else k, u) for n, k, u in FIELDS)
    row = _row(0, "renamed target", LEVEL0_MJD)
    row.update(exp_id=exp_id, exp_header_id="")
    with world.catalogue.engine.begin() as conn:
        report = import_obsportal(
            conn, local_operator(), write_votable(tmp_path / "again.vot", [row], fields), collection
        )
    assert (report["updated"], report["added"]) == (1, 0)
    gid = oi.level0["l0-embargoed"]
    with world.catalogue.engine.connect() as conn:
        stored = conn.execute(
            select(ObsCoreRow).where(ObsCoreRow.hcdc_kind == "granule", ObsCoreRow.hcdc_key == gid)
        ).one()
    assert stored.target_name == "renamed target"
    # DataLink: the exposure's page for who sees it, NotFoundFault (as a missing ID) for the others
    client = TestClient(create_app(catalogue=world.catalogue, clock=lambda: BEFORE, secret_key="t"))
    did = publisher_did(vo_authority(world.catalogue.settings), "granule", gid)
    owner = client.get(
        "/datalink", params={"ID": did}, headers={"Authorization": f"Bearer {world.tokens['owner']}"}
    )
    anonymous = client.get("/datalink", params={"ID": did})
    table = parse(io.BytesIO(owner.content)).get_first_table().to_table()
    assert list(table["semantics"]) == ["#documentation"]
    assert str(table["access_url"][0]) == f"https://obs.jmmc.fr/detail/exposure/{exp_id}"
    assert str(table["content_type"][0]) == "text/html"
    hidden = parse(io.BytesIO(anonymous.content)).get_first_table().to_table()
    assert str(hidden["error_message"][0]).startswith("NotFoundFault: ") and exp_id not in anonymous.text


def test_mircx_raw_files_are_level0_rows(world, tmp_path) -> None:
    """A MIRC-X night ingested into a CHARA L0 collection: each science raw file's observation
    log is one calib_level 0 row of the collection, linked to its file through DataLink."""
    import datetime as dt

    from hcdc.archive.ingest import ingest
    from hcdc.archive.interferometry import CollectionSpec, add_collection
    from hcdc.instruments.mircx_simulate import simulate_night

    night = simulate_night(tmp_path / "raw", "zet Oph", dt.datetime(2023, 5, 12, 4, 10), n_data=2)
    with world.catalogue.engine.begin() as conn:
        add_collection(
            conn,
            local_operator(),
            CollectionSpec(
                "chara-l0",
                "chara",
                calib_level=0,
                facility="CHARA",
                instrument="MIRC-X",
                data_rights="public",
            ),
        )
    assert ingest(world.catalogue, night, workers=1).ingested == len(night)
    with world.catalogue.engine.connect() as conn:
        granules = dict(
            conn.execute(
                select(GranuleRow.id, GranuleRow.file_id).where(GranuleRow.obs_collection == "chara-l0")
            ).all()
        )
        rows = _rows(conn, None, BEFORE)
        stored = {
            r.hcdc_key: r
            for r in conn.execute(
                select(ObsCoreRow).where(ObsCoreRow.hcdc_kind == "granule", ObsCoreRow.hcdc_key.in_(granules))
            )
        }
    assert len(granules) == 2 and set(granules) <= set(rows)  # public rights: anonymous sees them
    for gid, file_id in granules.items():
        row = rows[gid]
        assert (row["calib_level"], row["obs_collection"], row["facility_name"], row["instrument_name"]) == (
            0,
            "chara-l0",
            "CHARA",
            "MIRC-X",
        )
        assert row["target_name"] == "zet Oph" and row["t_max"] > row["t_min"] and row["access_estsize"] > 0
        assert row["access_format"] == DATALINK_FORMAT and row["access_url"].startswith(
            "http://x/vo/datalink?ID="
        )
        assert stored[gid].hcdc_file_id == file_id and stored[gid].hcdc_product_type == "obslog:science"
