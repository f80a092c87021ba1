"""Superseded granules leave ivoa.obscore (issue 14), on SQLite and PostgreSQL.

A granule of a collection whose key (collection, target, INSNAME, night, level) reappears in a
current file ingested later is superseded by it (``granules.superseded_clause``; OiDB's ObsCore
table holds only the granules in force). Every path that writes ObsCore rows (ingest, collection
add, assignment, validation, publication, ``rebuild_obscore``) must then publish exactly the
current granules: checked after each step against the granule listing, with a leak check
(published_select, TAP and DataLink) for a data PI, another user and anonymous callers while the
collection is under embargo. The superseded granule stays citable: its DID resolves through
DataLink for who may see it.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from astropy.io import fits
from astropy.io.votable import parse
from fastapi.testclient import TestClient
from sqlalchemy import select, true

from hcdc.archive.access import load_principal, local_operator
from hcdc.archive.accounts import add_user, create_token
from hcdc.archive.granules import list_granules
from hcdc.archive.identifiers import parse_publisher_did, publisher_did, vo_authority
from hcdc.archive.ingest import ingest
from hcdc.archive.interferometry import (
    CollectionSpec,
    add_collection,
    assign_file,
    publish_file,
    validate_file,
)
from hcdc.archive.interferometry_models import GranuleRow
from hcdc.archive.models import File, utcnow
from hcdc.archive.obscore import ObsCoreRow, published_select, rebuild_obscore
from hcdc.web.app import create_app

pytestmark = pytest.mark.shared_data

SPICA = "simulated/ASPRO2_CHARA_SPICA_zetOph.fits"  # CHARA/SPICA, zet Oph, 2023-05-12
AUTHORITY = "hcdc.test"


def _stored(conn) -> dict[tuple[str, int], tuple]:
    columns = [c for c in ObsCoreRow.__table__.columns if c.name != "id"]
    return {(r.hcdc_kind, r.hcdc_key): tuple(r) for r in conn.execute(select(*columns))}


def _published_granules(conn) -> set[int]:
    keys = conn.scalars(select(ObsCoreRow.hcdc_key).where(ObsCoreRow.hcdc_kind == "granule"))
    return set(keys)


def _current_granules(conn) -> set[int]:
    return {row["id"] for row in list_granules(conn, visible=true())}


def _check(catalogue, raw_files: bool = False) -> set[int]:
    """ObsCore publishes exactly the current granules, nothing of their files as raw files (unless
    ``raw_files``: a night's calibration raw files), and a rebuild writes the same rows. Returns
    the current granule ids."""
    with catalogue.engine.begin() as conn:
        current = _current_granules(conn)
        assert _published_granules(conn) == current
        if not raw_files:
            assert conn.scalars(select(ObsCoreRow.id).where(ObsCoreRow.hcdc_kind == "file")).all() == []
        stored = _stored(conn)
        rebuild_obscore(conn)
        assert _stored(conn) == stored
    return current


def _granule_of(conn, file_id: int) -> int:
    return conn.scalar(select(GranuleRow.id).where(GranuleRow.file_id == file_id))


def _reduction(source: Path, target: Path, history: str) -> Path:
    """A new reduction of the same data: other bytes, same tables (same granule key)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with fits.open(source) as hdul:
        hdul[0].header["HISTORY"] = history
        hdul.writeto(target)
    return target


def _file_id(conn, path: Path) -> int:
    return conn.scalar(select(File.id).where(File.path == str(path), File.is_current))


def _tap_granules(client: TestClient, token: str | None) -> set[int]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post(
        "/tap/sync",
        data={"LANG": "ADQL", "QUERY": "SELECT obs_publisher_did FROM ivoa.obscore"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    table = parse(io.BytesIO(response.content)).get_first_table().to_table()
    dids = [parse_publisher_did(str(d)) for d in table["obs_publisher_did"]]
    return {d.key for d in dids if d.kind == "granule"}


def test_superseded_granules_leave_obscore_in_every_path(
    catalogue, shared_data: Path, tmp_path: Path
) -> None:
    first = tmp_path / "incoming" / "a" / "zetOph_SPICA.fits"
    first.parent.mkdir(parents=True)
    shutil.copy(shared_data / "oifits" / SPICA, first)
    operator = local_operator()
    assert ingest(catalogue, [first], workers=1, copy=True).ingested == 1
    with catalogue.engine.begin() as conn:
        for name in ("pi", "other"):
            add_user(conn, operator, name)
        tokens = {name: create_token(conn, operator, name).secret for name in ("pi", "other")}
        # five years of embargo from 2023-05: embargoed now for all but the data PI and staff
        add_collection(
            conn,
            operator,
            CollectionSpec(
                "spica-issp",
                "chara",
                owner="pi",
                facility="CHARA",
                instrument="SPICA",
                embargo_months=60,
                calib_level=2,
            ),
        )
        f1 = _file_id(conn, first)
        g1 = _granule_of(conn, f1)
    assert _check(catalogue) == {g1}

    # ingest: a new reduction of the same granule in another file supersedes g1
    second = _reduction(first, tmp_path / "incoming" / "b" / "zetOph_SPICA_v2.fits", "second reduction")
    assert ingest(catalogue, [second], workers=1, copy=True).ingested == 1
    with catalogue.engine.connect() as conn:
        f2 = _file_id(conn, second)
        g2 = _granule_of(conn, f2)
        every = {r["id"]: r["superseded"] for r in list_granules(conn, visible=true(), all_versions=True)}
    assert every == {g1: True, g2: False}
    assert _check(catalogue) == {g2}

    # leak check while embargoed: the PI sees g2 only, nobody sees g1, others nothing
    client = TestClient(create_app(catalogue=catalogue, secret_key="t"))
    with catalogue.engine.connect() as conn:
        seen = {}
        for name in ("admin", "pi", "other", "public"):
            user = load_principal(conn, name) if name != "admin" else operator
            query = published_select(user, utcnow(), authority=AUTHORITY, base_url="http://x/vo")
            rows = conn.execute(query).mappings()
            seen[name] = {
                d.key
                for d in (parse_publisher_did(r["obs_publisher_did"], AUTHORITY) for r in rows)
                if d.kind == "granule"
            }
    assert seen == {"admin": {g2}, "pi": {g2}, "other": set(), "public": set()}
    assert _tap_granules(client, tokens["pi"]) == {g2}
    assert _tap_granules(client, tokens["other"]) == set() and _tap_granules(client, None) == set()
    # the superseded granule stays citable: its DID resolves for the PI, not for the others
    did = publisher_did(vo_authority(catalogue.settings), "granule", g1)
    for token, found in ((tokens["pi"], True), (tokens["other"], False), (None, False)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = client.get("/datalink", params={"ID": did}, headers=headers)
        table = parse(io.BytesIO(response.content)).get_first_table().to_table()
        if found:
            assert list(table["semantics"]) == ["#this"], response.text
        else:
            assert str(table["error_message"][0]).startswith("NotFoundFault: ")
            assert "zetOph" not in response.text and "SPICA" not in response.text

    # validation: the validated copy of the first file is ingested later, so it supersedes g2
    record = validate_file(catalogue.engine, catalogue.storage_root, operator, f1, 3, "medium")
    with catalogue.engine.connect() as conn:
        f1b = _file_id(conn, first)
        g1b = _granule_of(conn, f1b)
    assert f1b == record["new_file"] and f1b > f2
    assert _check(catalogue) == {g1b}

    # publication: g1b becomes Level 3, another key, so g2 (Level 2) is current again
    with catalogue.engine.begin() as conn:
        publish_file(conn, operator, f1b, "2024A&A...681A..12X")
    assert _check(catalogue) == {g1b, g2}

    # assignment: a third reduction, outside any collection (another instrument prefix rule),
    # put by hand into the collection, supersedes g2 again
    third = _reduction(first, tmp_path / "incoming" / "c" / "zetOph_SPICA_v3.fits", "third reduction")
    with catalogue.engine.begin() as conn:
        add_collection(conn, operator, CollectionSpec("holding", "other", data_rights="proprietary"))
    assert ingest(catalogue, [third], workers=1, copy=True).ingested == 1
    with catalogue.engine.connect() as conn:
        f3 = _file_id(conn, third)
        g3 = _granule_of(conn, f3)
        collection = conn.scalar(select(GranuleRow.obs_collection).where(GranuleRow.id == g3))
    assert collection == "spica-issp"  # matched by the rules at ingest
    assert _check(catalogue) == {g1b, g3}
    with catalogue.engine.begin() as conn:
        assign_file(conn, operator, f3, "holding")  # moved out: g2 is in force again
    assert _check(catalogue) == {g1b, g2, g3}
    with catalogue.engine.begin() as conn:
        assign_file(conn, operator, f3, "spica-issp")  # and back: g2 superseded again
    assert _check(catalogue) == {g1b, g3}


def test_level0_granules_of_a_night_are_not_rewritten_by_the_next_file(catalogue, tmp_path: Path) -> None:
    """MIRC-X raw files of one night and target are all observations (Level 0 never supersedes):
    ingesting another file of that night leaves the earlier files' rows alone (same row ids)."""
    import datetime as dt

    from hcdc.instruments.mircx_simulate import simulate_night

    first = simulate_night(tmp_path / "raw1", "zet Oph", dt.datetime(2023, 5, 12, 4, 10), n_data=2)
    assert ingest(catalogue, first, workers=1).ingested == len(first)
    with catalogue.engine.connect() as conn:
        before = dict(
            conn.execute(
                select(ObsCoreRow.hcdc_key, ObsCoreRow.id).where(ObsCoreRow.hcdc_kind == "granule")
            ).all()
        )
    assert len(before) == 2
    later = simulate_night(tmp_path / "raw2", "zet Oph", dt.datetime(2023, 5, 12, 5, 10), n_data=1)
    assert ingest(catalogue, later, workers=1).ingested == len(later)
    with catalogue.engine.connect() as conn:
        after = dict(
            conn.execute(
                select(ObsCoreRow.hcdc_key, ObsCoreRow.id).where(ObsCoreRow.hcdc_kind == "granule")
            ).all()
        )
        nights = set(conn.scalars(select(GranuleRow.night_id)))
    assert len(nights) == 1 and len(after) == 3
    assert {k: after[k] for k in before} == before
    assert _check(catalogue, raw_files=True) == set(after)
