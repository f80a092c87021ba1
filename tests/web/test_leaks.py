"""The leak matrix: every route of the application, generated from its route table, tried by
anonymous (the public account), a survey member, another programme's PI, a delegate, a co-I,
the owner (PI) and an admin, on data that is private, embargoed, PI-delayed, survey-only, of
another programme and public, before and after the release dates, on SQLite and PostgreSQL.

Three checks: (1) the expected visibility (table below, from the rules of docs/access.md)
agrees with :mod:`hcdc.archive.access`; (2) each route that names an object answers 200 for
those who may see it and 404 (or a redirect to the sign-in page) for the others; (3) no
response of any route, listings and exports included, carries a marker (raw file checksum,
provenance record id, product id link) of an object its caller may not see.
"""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select

from hcdc.archive.access import ANONYMOUS, AccessContext, load_principal
from hcdc.archive.pipeline_models import ProvenanceEntry
from hcdc.web.app import iter_routes

from .world import AFTER, BEFORE, OBJECTS

CALLERS = [None, "member", "other_pi", "delegate", "coi", "owner", "admin"]
OWN = {"private", "embargoed", "delayed", "public"}
#: products each caller may see at BEFORE (after AFTER: every one, by the clock)
PRODUCTS_BEFORE = {
    None: {"public"},
    "member": {"public", "survey"},
    "other_pi": {"public", "other"},
    "delegate": OWN,
    "coi": OWN,
    "owner": OWN,
    "admin": set(OBJECTS),
}
#: raw files and datasets: the embargoed and delayed ones' raw data are public already
RAW_BEFORE = {k: v | {"embargoed", "delayed"} for k, v in PRODUCTS_BEFORE.items()}
RAW_BEFORE["admin"] = set(OBJECTS)

#: path parameters -> which object of the world fills them
KNOWN_PARAMS = {
    ("file_id",): "file",
    ("dataset_id",): "dataset",
    ("product_id",): "product",
    ("file_id", "product_id"): "product-file",
    ("job_id",): "job",
    # VO routes name no catalogue object (a table name, a UWS job of the caller): TAP's rights are
    # tested row by row in tests/vo (test_tap_sync, test_obscore)
    ("name",): "vo",
    ("uws_job",): "vo",
    ("item", "uws_job"): "vo",
    # a survey and its targets (interferometry survey tracking): this world holds no survey; who sees
    # one (its group and staff only, unknown and hidden answered alike) is tested in
    # tests/web/test_survey_api.py and tests/archive/test_survey_tracking.py
    ("name", "target"): "survey",
    # a night (the staff monitoring page): filled with the world's nights and tried as a listing below
    ("night",): "night",
}
#: nights tried on routes naming a night: every night of the world's objects
NIGHTS = sorted({when.date().isoformat() for _prog, when in OBJECTS.values()})
#: query strings tried on routes without path parameters (default: none)
VARIANTS = {
    "/search": ["?kind=products", "?kind=datasets", "?kind=files", "?kind=products&target=eri&limit=500"],
    "/search/export": [
        f"?kind={k}&format={f}" for k in ("products", "datasets", "files") for f in ("csv", "votable")
    ],
    "/api/v1/products": ["?limit=500"],
    "/api/v1/datasets": ["?limit=500"],
    "/api/v1/files": ["?limit=500"],
    "/admin/monitoring/report": [
        "?from=2026-01-01&to=2026-01-31",
        "?from=2026-01-01&to=2026-01-31&format=csv",
        "?from=2019-12-15&to=2020-01-15",
    ],
    "/tap/sync": ["?LANG=ADQL&QUERY=SELECT%20*%20FROM%20ivoa.obscore&MAXREC=1000&FORMAT=votable/td"],
}
#: VO routes addressed by publisher DIDs in the query: without one they answer a usage error
#: (400); tests/vo/test_datalink.py and test_prov.py run the rights matrix through their IDs
QUERY_ADDRESSED = {"/datalink", "/datalink/prov", "/datalink/hdu"}


def _routes(app) -> tuple[list[tuple[str, str]], list[str]]:
    """(path template, object kind) of every GET route naming an object; paths of the others."""
    detail, listing = [], []
    for route in iter_routes(app):
        methods = getattr(route, "methods", None) or set()
        if "GET" not in methods:
            continue
        params = tuple(sorted(route.param_convertors))
        if not params:
            listing.append(route.path)
            continue
        assert params in KNOWN_PARAMS, f"route {route.path} is not covered by the leak matrix: add it"
        if KNOWN_PARAMS[params] == "night":
            listing += [route.path.replace("{night}", night) for night in NIGHTS]
            continue
        if KNOWN_PARAMS[params] not in ("vo", "survey"):
            detail.append((route.path, KNOWN_PARAMS[params]))
    return detail, listing


def _fill(path: str, kind: str, world, label: str) -> list[str]:
    ids = world.ids[label]
    if kind == "product-file":
        pid = ids["product"]
        return [
            path.replace("{product_id}", str(pid)).replace("{file_id}", str(f))
            for f in world.product_files[pid][:2]
        ]
    if kind == "job":
        return [path.replace("{job_id}", str(world.job))] if label == "private" else []
    number = ids["file" if kind == "file" else kind]
    return [path.replace("{" + f"{kind}_id" + "}", str(number))]


def _markers(world, label: str) -> list[str]:
    """Strings that only a response about this object's raw file or product would contain."""
    from hcdc.archive.models import File

    with world.catalogue.engine.connect() as conn:
        sha = conn.scalar(select(File.sha256).where(File.id == world.ids[label]["file"]))
        record = conn.scalar(
            select(ProvenanceEntry.record_id).where(ProvenanceEntry.product_id == world.ids[label]["product"])
        )
    return [sha, record]


def _visibility(world, caller: str | None, when) -> dict[str, set[str]]:
    """What access.py says, per kind, at ``when``."""
    with world.catalogue.engine.connect() as conn:
        user = ANONYMOUS if caller is None else load_principal(conn, caller)
        ctx = AccessContext(conn, user, when)
        return {
            "product": {k for k in OBJECTS if ctx.can_see_product(world.ids[k]["product"])},
            "dataset": {k for k in OBJECTS if ctx.can_see_dataset(world.ids[k]["dataset"])},
            "file": {k for k in OBJECTS if ctx.can_see_file(world.ids[k]["file"])},
            "job": {"private"} if ctx.can_see_job(world.job) else set(),
        }


@pytest.mark.parametrize("when", [BEFORE, AFTER], ids=["before-release", "after-release"])
def test_leak_matrix(world, client_at, when):
    app = client_at(when).app
    detail, listing = _routes(app)
    assert len(detail) >= 12 and len(listing) >= 10, (detail, listing)
    markers = {label: _markers(world, label) for label in OBJECTS}
    checked = 0
    for caller in CALLERS:
        seen = _visibility(world, caller, when)
        expected_products = PRODUCTS_BEFORE[caller] if when == BEFORE else set(OBJECTS)
        expected_raw = RAW_BEFORE[caller] if when == BEFORE else set(OBJECTS)
        assert seen["product"] == expected_products, caller
        assert seen["dataset"] == seen["file"] == expected_raw, caller
        assert (seen["job"] == {"private"}) == (caller in ("owner", "admin")), caller
        client = client_at(when, caller)
        hidden_markers = [m for label in OBJECTS if label not in seen["product"] for m in markers[label][1:]]
        hidden_markers += [markers[label][0] for label in OBJECTS if label not in seen["file"]]
        # (2) routes naming an object
        for template, kind in detail:
            for label in OBJECTS:
                visible = label in seen["product" if kind == "product-file" else kind]
                for url in _fill(template, kind, world, label):
                    response = client.get(url, follow_redirects=False)
                    checked += 1
                    where = f"{caller or 'anonymous'} GET {url} ({label})"
                    if response.status_code == 303:  # a page that needs a signed-in user
                        assert caller is None and response.headers["location"].startswith("/login"), where
                        continue
                    if visible:
                        assert response.status_code == 200, (
                            f"{where}: {response.status_code} {response.text[:200]}"
                        )
                    else:
                        assert response.status_code == 404, f"{where}: {response.status_code}"
                        body = response.text
                        assert not any(m in body for m in markers[label]), f"{where} leaks a marker"
        # (3) every other route: no marker of a hidden object, and listings list exactly what is visible
        for path in listing:
            for query in VARIANTS.get(path, [""]):
                response = client.get(path + query, follow_redirects=False)
                checked += 1
                where = f"{caller or 'anonymous'} GET {path}{query}"
                allowed = (200, 303, 401, 403) + ((400,) if path in QUERY_ADDRESSED else ())
                assert response.status_code in allowed, f"{where}: {response.status_code}"
                body = response.text
                assert not any(m in body for m in hidden_markers), f"{where} leaks a hidden object's marker"
                _check_listing(path, query, response, world, seen, where)
    assert checked > 500


def _ids(world, labels: set[str], kind: str) -> set[int]:
    return {world.ids[label][kind] for label in labels}


def _check_listing(path, query, response, world, seen, where) -> None:
    kinds = {"products": "product", "datasets": "dataset", "files": "file"}
    if path.startswith("/api/v1/") and path.rsplit("/", 1)[-1] in kinds:
        kind = kinds[path.rsplit("/", 1)[-1]]
        got = {row["id"] for row in response.json()["items"]}
        expected = _ids(world, seen[kind], kind)
        if kind == "file":
            got -= {world.calibration_file}  # public at once (R2)
        assert got == expected, where
    elif path == "/search" or path == "/search/export":
        kind = kinds[re.search(r"kind=(\w+)", query).group(1)]
        if path == "/search":
            got = {int(i) for i in re.findall(rf'href="/{kind}s/(\d+)" class="result-link"', response.text)}
        elif "format=csv" in query:
            got = {int(row["id"]) for row in csv.DictReader(io.StringIO(response.text))}
        else:
            from astropy.io.votable import parse_single_table

            got = {int(i) for i in parse_single_table(io.BytesIO(response.content)).to_table()["id"]}
        if kind == "file":
            got -= {world.calibration_file}
        assert got == _ids(world, seen[kind], kind), where
    elif path == "/api/v1/jobs":
        assert {j["id"] for j in response.json()["items"]} == ({world.job} if seen["job"] else set()), where
    elif path == "/api/v1/stats":
        assert response.json()["products_by_level"].get("L2", 0) == len(seen["product"]), where
