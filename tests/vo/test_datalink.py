# ruff: noqa: F811 - the fixtures of dl_world are imported by name
"""DataLink 1.1 (/datalink): the links of products and raw files, followed to their bytes; rights
for every account and access state; hostile IDs; votlint; pyvo's DatalinkResults."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from astropy.io import fits, votable
from sqlalchemy import select
from web.world import AFTER, BEFORE, OBJECTS, USERS

from hcdc.archive.access import ANONYMOUS, AccessContext, load_principal
from hcdc.archive.models import File
from hcdc.archive.pipeline_models import ProductFile
from hcdc.web.vo.datalink import DATALINK_MEDIA_TYPE, FIELDS

from .dl_world import token_session, vo_client, vo_l2_source, vo_server, vo_world  # noqa: F401 - fixtures

COLUMNS = [
    "ID",
    "access_url",
    "service_def",
    "error_message",
    "semantics",
    "description",
    "content_type",
    "content_length",
    "content_qualifier",
    "local_semantics",
    "link_auth",
    "link_authorized",
]


def rows_of(response) -> list[dict]:
    """The DataLink rows of a response (checked to be a DataLink 1.1 VOTable)."""
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("application/x-votable+xml")
    table = votable.parse_single_table(io.BytesIO(response.content))
    assert [f.name for f in table.fields] == COLUMNS
    out = []
    for row in table.to_table():
        values = {}
        for name in COLUMNS:
            value = row[name]
            masked = bool(np.ma.is_masked(value))
            values[name] = (
                None if masked or value == "" else value.item() if hasattr(value, "item") else value
            )
        out.append(values)
    return out


def by_semantics(rows: list[dict], semantics: str) -> list[dict]:
    return [r for r in rows if r["semantics"] == semantics]


def test_product_links_cover_files_previews_parts_progenitors_and_provenance(vo_world, vo_client):
    chain = vo_world.chains["public"]
    client = vo_client("owner")
    did = vo_world.did("product", chain.level2)
    rows = rows_of(client.get("/datalink", params={"ID": did}))
    assert {r["ID"] for r in rows} == {did}
    assert all(r["error_message"] is None for r in rows)
    (this,) = by_semantics(rows, "#this")
    assert this["content_type"] == "application/fits" and this["content_qualifier"] == "image"
    assert rows[0] is this or rows[0]["semantics"] == "#this"  # the product itself first
    assert by_semantics(rows, "#preview-image") and by_semantics(rows, "#preview-plot")
    assert len(by_semantics(rows, "#package")) == 1
    parts = {r["local_semantics"]: r for r in by_semantics(rows, "#auxiliary")}
    assert {"snr-map", "contrast"} <= set(parts)
    progenitors = by_semantics(rows, "#progenitor")
    level1 = [r for r in progenitors if r["local_semantics"] == "level1"]
    assert len(level1) == 1 and level1[0]["content_type"] == DATALINK_MEDIA_TYPE
    assert (
        vo_world.did("product", chain.level1).replace("?", "%3F").replace("/", "%2F").replace(":", "%3A")
        in (level1[0]["access_url"])
    )
    raw = [r for r in progenitors if r["local_semantics"] == "raw"]
    calib = [r for r in progenitors if r["local_semantics"] == "calibration"]
    assert [r["access_url"] for r in raw] == [f"http://testserver/api/v1/files/{chain.raw}/download"]
    assert [r["access_url"] for r in calib] == [f"http://testserver/api/v1/files/{chain.dark}/download"]
    (prov,) = [r for r in by_semantics(rows, "#documentation") if r["local_semantics"] == "provenance"]
    assert prov["content_type"] == "application/json" and "/datalink/prov?ID=" in prov["access_url"]
    # public product: anybody may use its links; rows are authorised
    assert {r["link_auth"] for r in rows} == {"false"}
    assert all(r["link_authorized"] is True for r in rows)

    # the Level 1 document links back to the Level 2 product and down to the raw file
    l1_rows = rows_of(client.get(level1[0]["access_url"]))
    derivations = by_semantics(l1_rows, "#derivation")
    assert [r["access_url"].rsplit("%3F", 1)[1] for r in derivations] == [str(chain.level2)]
    assert {r["local_semantics"] for r in by_semantics(l1_rows, "#progenitor")} == {"raw", "calibration"}


def test_every_link_answers_with_the_catalogued_bytes(vo_world, vo_client):
    chain = vo_world.chains["public"]
    client = vo_client()  # anonymous: the chain is public
    rows = rows_of(client.get("/datalink", params={"ID": vo_world.did("product", chain.level2)}))
    with vo_world.world.catalogue.engine.connect() as conn:
        sums = {r.id: r.sha256 for r in conn.execute(select(ProductFile.id, ProductFile.sha256))}
        sums |= {f"f{r.id}": r.sha256 for r in conn.execute(select(File.id, File.sha256))}
    for row in rows:
        got = client.get(row["access_url"].replace("http://testserver", ""))
        assert got.status_code == 200, (row, got.text[:300])
        assert got.headers["content-type"].split(";")[0] == row["content_type"].split(";")[0], row
        if row["content_length"] is not None:
            assert len(got.content) == row["content_length"], row
        url = row["access_url"]
        if "/api/v1/products/" in url and "/files/" in url:
            assert hashlib.sha256(got.content).hexdigest() == sums[int(url.rsplit("/", 1)[1])]
        elif url.endswith("/download") and "/api/v1/files/" in url:
            assert hashlib.sha256(got.content).hexdigest() == sums[f"f{int(url.split('/')[-2])}"]
        elif "/datalink/hdu" in url:
            with fits.open(io.BytesIO(got.content)) as part:
                assert part[1].name in ("SNR_MAP", "CONTRAST")
                if part[1].name == "SNR_MAP":
                    assert part[1].data.ndim >= 2


def test_raw_file_links_this_calibrations_and_derived_products(vo_world, vo_client):
    chain = vo_world.chains["public"]
    rows = rows_of(vo_client("owner").get("/datalink", params={"ID": vo_world.did("file", chain.raw)}))
    (this,) = by_semantics(rows, "#this")
    assert this["access_url"].endswith(f"/api/v1/files/{chain.raw}/download")
    (dark,) = by_semantics(rows, "#dark")
    assert (
        dark["access_url"].endswith(f"/api/v1/files/{chain.dark}/download")
        and dark["local_semantics"] == "dark"
    )
    derived = {r["access_url"].rsplit("%3F", 1)[1] for r in by_semantics(rows, "#derivation")}
    assert {str(chain.level1), str(chain.level2), str(vo_world.world.ids["public"]["product"])} == derived


def test_several_ids_keep_their_order_and_errors_are_rows(vo_world, vo_client):
    chain = vo_world.chains["public"]
    ids = [
        vo_world.did("file", chain.raw),
        "not an identifier",
        vo_world.did("product", 999_999),
        vo_world.did("product", chain.level1),
    ]
    response = vo_client().post("/datalink", data={"ID": ids, "RESPONSEFORMAT": "votable"})
    rows = rows_of(response)
    order = list(dict.fromkeys(r["ID"] for r in rows))
    assert order == ids
    errors = {r["ID"]: r["error_message"] for r in rows if r["error_message"]}
    assert errors["not an identifier"].startswith("UsageFault: ")
    assert errors[ids[2]] == f"NotFoundFault: {ids[2]} is not known to this service"
    assert set(errors) == {ids[1], ids[2]}


HOSTILE = [
    "",
    " ",
    "ivo://",
    "ivo:///product?1",
    "ivo://hcdc.test/product?",
    "ivo://hcdc.test/product?-1",
    "ivo://hcdc.test/product?1 OR 1=1",
    "ivo://hcdc.test/product?1';DROP TABLE products;--",
    "ivo://hcdc.test/product?99999999999999999999999999",
    "ivo://hcdc.test/product?2147483648",
    "ivo://hcdc.test/product?0",
    "ivo://hcdc.test/dataset?1",
    "ivo://hcdc.test/../../etc/passwd?1",
    "ivo://other.authority/product?1",
    "ivo://hcdc.test/product?١٢",  # Arabic-Indic digits: isdigit() but not an id
    "ivo://hcdc.test/product?1\x00",
    "\u202eivo://hcdc.test/product?1",
    "x" * 10_000,
]


@pytest.mark.parametrize("user", [None, "owner"])
def test_hostile_ids_get_fault_rows_never_500(vo_world, vo_client, user):
    client = vo_client(user)
    ids = [h.replace("hcdc.test", vo_world.authority) for h in HOSTILE if h.strip()]
    rows = rows_of(client.post("/datalink", data={"ID": ids}))
    assert len(rows) == len(ids), "one fault row per hostile ID"
    for row in rows:
        assert row["access_url"] is None
        assert row["error_message"].startswith(("UsageFault: ", "NotFoundFault: ")), row
    # one at a time, by GET too
    for hostile in ids:
        response = client.get("/datalink", params={"ID": hostile})
        assert response.status_code == 200
        (row,) = rows_of(response)
        assert row["error_message"].startswith(("UsageFault: ", "NotFoundFault: "))


def test_usage_errors_are_error_documents(vo_world, vo_client):
    client = vo_client()
    for response in (
        client.get("/datalink"),
        client.get("/datalink", params={"ID": vo_world.did("file", 1), "RESPONSEFORMAT": "text/csv"}),
        client.post("/datalink", data={"ID": [vo_world.did("file", 1)] * 201}),
    ):
        assert response.status_code == 400
        doc = votable.parse(io.BytesIO(response.content))
        (info,) = [i for i in doc.resources[0].infos if i.name == "QUERY_STATUS"]
        assert info.value == "ERROR" and info.content.startswith("UsageFault: ")
        assert not doc.resources[0].tables


def _expected_visible(world, user: str | None, kind: str, number: int, when) -> bool:
    with world.catalogue.engine.connect() as conn:
        principal = ANONYMOUS if user is None else load_principal(conn, user)
        ctx = AccessContext(conn, principal, when)
        return bool(ctx.can_see_file(number) if kind == "file" else ctx.can_see_product(number))


@pytest.mark.parametrize("when", [BEFORE, AFTER], ids=["before", "after"])
def test_rights_every_account_and_state_and_no_existence_leak(vo_world, vo_client, when):
    world = vo_world.world
    with world.catalogue.engine.connect() as conn:
        raw_sums = {
            label: conn.scalar(select(File.sha256).where(File.id == ids["file"]))
            for label, ids in world.ids.items()
        }
    for user in [None, *USERS]:
        client = vo_client(user, when)
        for label in OBJECTS:
            for kind in ("product", "file"):
                number = world.ids[label][kind]
                did = vo_world.did(kind, number)
                rows = rows_of(client.get("/datalink", params={"ID": did}))
                visible = _expected_visible(world, user, kind, number, when)
                if visible:
                    assert all(r["error_message"] is None for r in rows), (user, label, kind)
                    assert rows and all(r["link_authorized"] is True for r in rows)
                    expected_auth = "false" if _expected_visible(world, None, kind, number, when) else "true"
                    assert by_semantics(rows, "#this")[0]["link_auth"] == expected_auth
                else:
                    # exactly what a nonexistent id answers
                    absent = vo_world.did(kind, 999_999)
                    (ghost,) = rows_of(client.get("/datalink", params={"ID": absent}))
                    assert rows == [
                        {**ghost, "ID": did, "error_message": ghost["error_message"].replace(absent, did)}
                    ]
                # links only to what the caller may see: no hidden raw checksum anywhere
                for other, sha in raw_sums.items():
                    if not _expected_visible(world, user, "file", world.ids[other]["file"], when):
                        assert sha not in rows_of(client.get("/datalink", params={"ID": did})).__repr__()
                        assert f"/api/v1/files/{world.ids[other]['file']}/" not in repr(rows)


def test_private_chain_hidden_from_anonymous_shown_to_team(vo_world, vo_client):
    chain = vo_world.chains["private"]
    did = vo_world.did("product", chain.level2)
    (row,) = rows_of(vo_client().get("/datalink", params={"ID": did}))
    assert row["error_message"].startswith("NotFoundFault: ")
    for user in ("owner", "coi", "delegate", "admin"):
        rows = rows_of(vo_client(user).get("/datalink", params={"ID": did}))
        assert by_semantics(rows, "#this")[0]["link_auth"] == "true"
        progenitors = {r["local_semantics"] for r in by_semantics(rows, "#progenitor")}
        assert progenitors == {"level1", "raw", "calibration"}, user
    for user in ("other_pi", "member"):
        (row,) = rows_of(vo_client(user).get("/datalink", params={"ID": did}))
        assert row["error_message"].startswith("NotFoundFault: ")
    # and the download routes the links point to refuse the same callers
    this = by_semantics(rows_of(vo_client("owner").get("/datalink", params={"ID": did})), "#this")[0]
    path = this["access_url"].replace("http://testserver", "")
    assert vo_client("owner").get(path).status_code == 200
    assert vo_client().get(path).status_code == 404
    assert vo_client("other_pi").get(path).status_code == 404


def test_hdu_route_checks_rights_and_names(vo_world, vo_client):
    chain = vo_world.chains["private"]
    rows = rows_of(vo_client("owner").get("/datalink", params={"ID": vo_world.did("product", chain.level2)}))
    url = by_semantics(rows, "#auxiliary")[0]["access_url"].replace("http://testserver", "")
    assert vo_client("owner").get(url).status_code == 200
    assert vo_client().get(url).status_code == 404
    assert vo_client("owner").get(url.replace("EXTNAME=", "EXTNAME=PRIMARY&X=")).status_code == 400
    assert vo_client("owner").get(
        url.split("&FILE=")[0] + "&FILE=99999999999&EXTNAME=SNR_MAP"
    ).status_code in (
        404,
        422,
    )


def stilts() -> str:
    path = shutil.which("stilts")
    if path is None:
        pytest.skip("stilts is not installed (apt-get install stilts; .ci/setup-vo)")
    return path


def votlint(data: bytes, tmp_path: Path) -> str:
    target = tmp_path / "doc.vot"
    target.write_bytes(data)
    done = subprocess.run(
        [stilts(), "votlint", "validate=true", f"votable={target}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return (done.stdout + done.stderr).strip()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_votlint_accepts_links_and_error_documents(vo_world, vo_client, tmp_path):
    chain = vo_world.chains["public"]
    client = vo_client("owner")
    ids = [vo_world.did("product", chain.level2), vo_world.did("file", chain.raw), "garbage"]
    docs = {
        "links": client.post("/datalink", data={"ID": ids}).content,
        "error": client.get("/datalink").content,
    }
    for name, data in docs.items():
        report = votlint(data, tmp_path)
        assert report == "", f"votlint on the {name} document:\n{report}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pyvo_walks_from_a_did_to_the_file(vo_world, vo_server):
    """pyvo's DatalinkResults on our document (a real server), then its #this link with the same
    authenticated session; anonymous pyvo gets the NotFoundFault."""
    from pyvo.dal.adhoc import DatalinkResults

    chain = vo_world.chains["private"]
    session = token_session(vo_world, "owner")
    url = f"{vo_server}/datalink?ID={quote(vo_world.did('product', chain.level2), safe='')}"
    results = DatalinkResults.from_result_url(url, session=session)
    this = list(results.bysemantics("#this", include_narrower=False))
    assert len(this) == 1
    data = session.get(this[0].access_url).content
    with vo_world.world.catalogue.engine.connect() as conn:
        expected = conn.scalar(
            select(ProductFile.sha256).where(
                ProductFile.product_id == chain.level2, ProductFile.role == "product"
            )
        )
    assert hashlib.sha256(data).hexdigest() == expected
    # #progenitor rows of the chain, one of them a DataLink document (include_narrower=False:
    # pyvo would download the vocabulary; the tests run offline)
    progenitors = list(results.bysemantics("#progenitor", include_narrower=False))
    assert {p.content_type for p in progenitors} >= {DATALINK_MEDIA_TYPE, "application/fits"}
    # pyvo follows the Level 1 progenitor's own DataLink document
    level1 = next(p for p in progenitors if p.content_type == DATALINK_MEDIA_TYPE)
    nested = DatalinkResults.from_result_url(level1.access_url, session=session)
    assert [r.semantics for r in nested.bysemantics("#derivation", include_narrower=False)] == ["#derivation"]
    anonymous = DatalinkResults.from_result_url(url, session=token_session(vo_world, None))
    (row,) = list(anonymous)
    assert row.error_message.startswith("NotFoundFault: ")


def test_fields_match_the_standard_table():
    assert [n if n != "id" else "ID" for n, *_ in FIELDS] == COLUMNS


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pyvo_walk_from_an_obscore_row_to_the_file(vo_world, vo_server):
    """The ObsCore row of the owner's private Level 2 product (h2's published_select, as TAP
    serves it) -> its access_url (our DataLink) -> pyvo -> #this -> the catalogued bytes."""
    from pyvo.dal.adhoc import DatalinkResults

    from hcdc.archive.access import load_principal
    from hcdc.archive.obscore import published_select, rebuild_obscore

    chain = vo_world.chains["private"]
    did = vo_world.did("product", chain.level2)
    engine = vo_world.world.catalogue.engine
    with engine.begin() as conn:
        rebuild_obscore(conn)
    with engine.connect() as conn:
        query = published_select(
            load_principal(conn, "owner"), BEFORE, authority=vo_world.authority, base_url=vo_server
        ).subquery()
        row = conn.execute(select(query).where(query.c.obs_publisher_did == did)).one()._mapping
        expected = conn.scalar(
            select(ProductFile.sha256).where(
                ProductFile.product_id == chain.level2, ProductFile.role == "product"
            )
        )
    assert row["access_format"] == DATALINK_MEDIA_TYPE
    session = token_session(vo_world, "owner")
    links = DatalinkResults.from_result_url(row["access_url"], session=session)
    (this,) = list(links.bysemantics("#this", include_narrower=False))
    assert hashlib.sha256(session.get(this.access_url).content).hexdigest() == expected
