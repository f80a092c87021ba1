"""The leak matrix: every route of the application, generated from its route table, tried by
anonymous (the public account), a survey member, another programme's PI, a delegate, a co-I,
the owner (PI) and an admin, on data that is private, embargoed, PI-delayed, survey-only, of
another programme and public, before and after the release dates, on SQLite and PostgreSQL.

Three checks: (1) the expected visibility (table below, from the rules of docs/access.md)
agrees with :mod:`hcdc.archive.access`; (2) each route that names an object answers 200 for
those who may see it and 404 (or a redirect to the sign-in page) for the others; (3) no
response of any route, listings and exports included, carries a marker (raw file checksum,
provenance record id, product id link) of an object its caller may not see.

Interferometry joins the same world (tests/web/oi_world.py): OiDB granules of real OIFITS files
in a secure collection under embargo (with a delegate), a calibrator, a proprietary and a public
collection, and a survey followed by one group; the granule and survey routes (portal and API)
are in the matrix like the others, and the raw-file routes cover the OIFITS files (R14). Level 0
observation log entries without a file (ObsPortal exposures, one per access state) are granules
of the same collections: their pages, the granule listings and ivoa.obscore through /tap/sync
show exactly those access.py lets the caller see, and never a hidden one's exposure id.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from sqlalchemy import insert, select

from hcdc.archive.access import ANONYMOUS, AccessContext, load_principal
from hcdc.archive.pipeline_models import ProvenanceEntry
from hcdc.archive.tdb_models import Candidate
from hcdc.web.app import iter_routes

from .oi_world import LEVEL0, REAL, SURVEY, SURVEY_MARKER, add_interferometry, add_level0
from .tdb_world import add_product_candidates, detection_uid
from .world import AFTER, BEFORE, JOB_LOG_MARKER, OBJECTS, TRACEBACK_MARKER

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

#: granules (by oi_world label) each caller may see at BEFORE
GRANULES_BEFORE = {
    None: {"oi-calibrator", "oi-open"},
    "member": {"oi-calibrator", "oi-open"},
    "other_pi": {"oi-calibrator", "oi-open", "oi-private"},  # data PI of the proprietary collection
    "delegate": {"oi-calibrator", "oi-open", "oi-embargoed"},  # a grant of the secure collection
    "coi": {"oi-calibrator", "oi-open"},  # a co-I of the owner's ESO programme is not in the collection
    "owner": {"oi-calibrator", "oi-open", "oi-embargoed"},  # data PI of the secure collection
    "admin": set(REAL),
}
#: after the embargo: the secure collection's science granule is public; proprietary never
GRANULES_AFTER = {k: v | {"oi-embargoed"} for k, v in GRANULES_BEFORE.items()}
#: Level 0 observation log entries (no file) each caller may see at BEFORE, and after the embargo
LEVEL0_BEFORE = {
    caller: {"l0-" + label[3:] for label in labels if label != "oi-private"}
    for caller, labels in GRANULES_BEFORE.items()
}
LEVEL0_BEFORE["other_pi"] |= {"l0-private"}  # data PI of the collection (its release is in 2100)
LEVEL0_BEFORE["admin"] = set(LEVEL0)
LEVEL0_AFTER = {k: v | {"l0-embargoed"} for k, v in LEVEL0_BEFORE.items()}
#: the survey's label among the world's objects ("survey" is the ESO survey programme's data)
SURVEY_LABEL = "oi-survey"
#: who follows the survey (R16), at any date
SURVEY_FOLLOWERS = {"member", "admin"}

#: path parameters -> which object of the world fills them
KNOWN_PARAMS = {
    ("file_id",): "file",
    ("dataset_id",): "dataset",
    ("product_id",): "product",
    ("file_id", "product_id"): "product-file",
    ("job_id",): "job",
    # a batch of jobs (R10: its submitter and staff); the world's holds the owner's job
    ("batch_id",): "batch",
    # the Target Data Base (rule R15): the world's target is public; each object's product has its
    # detection in a candidate of its own (tests/web/tdb_world.py), visible with the product
    ("target_id",): "target",
    ("candidate_id",): "candidate",
    # VO routes name no catalogue object (a table name, a UWS job of the caller): TAP's rights are
    # tested row by row in tests/vo (test_tap_sync, test_obscore)
    ("name",): "vo",
    ("uws_job",): "vo",
    ("item", "uws_job"): "vo",
    # a survey and its targets (survey tracking, R16); ("name",) under /surveys too, see _kind
    ("name", "target"): "survey",
    ("granule_id",): "granule",
    # a night (the staff monitoring page): filled with the world's nights and tried as a listing below
    ("night",): "night",
    # an RDI reference library (R18): one per object, built on its product (_add_rdi_libraries)
    ("library_id",): "rdi-library",
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
    "/api/v1/granules": ["?limit=1000", "?instrument=pionier&wavelength=1.6e-6"],
    "/granules": ["", "?all_versions=true", "?target=a&instrument=PIONIER&wavelength=1.7&night=2016-05-31"],
    "/api/v1/candidates": ["", "?verdict=undetermined"],
    "/api/v1/detections": ["?limit=1000"],
    "/targets": ["", "?name=eri"],
    "/detections": [""],
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
        kind = "survey" if "/surveys/" in route.path else KNOWN_PARAMS[params]
        if kind != "vo":
            detail.append((route.path, kind))
    return detail, listing


@pytest.fixture(name="world")
def world_with_level0(world, shared_data, tmp_path):
    """The interferometry world of oi_world.py with one ObsPortal exposure per access state
    (oi_world.LEVEL0)."""
    world.oi = add_interferometry(world, shared_data, tmp_path)
    add_level0(world, world.oi, tmp_path)
    return world


def _fill(path: str, kind: str, world, label: str) -> list[str]:
    if label in LEVEL0:  # a granule without a file: its granule routes only
        return (
            [path.replace("{granule_id}", str(g)) for g in world.oi.granules[label]]
            if kind == "granule"
            else []
        )
    if kind == "survey" or label == SURVEY_LABEL:
        if kind == "survey" and label == SURVEY_LABEL:
            return [path.replace("{name}", SURVEY).replace("{target}", "AX Cir")]
        return []
    if kind == "granule":
        granules = world.oi.granules.get(label, [])
        return [path.replace("{granule_id}", str(g)) for g in granules]
    if label in REAL:  # an OIFITS file: the raw-file routes, and the product routes for its fit
        if kind == "product":  # (charts are drawn from Level 2 images only: a fit has none)
            return (
                [] if path.endswith("/charts") else [path.replace("{product_id}", str(world.oi.fits[label]))]
            )
        return [path.replace("{file_id}", str(world.oi.files[label]))] if kind == "file" else []
    ids = world.ids[label]
    if kind == "product-file":
        pid = ids["product"]
        return [
            path.replace("{product_id}", str(pid)).replace("{file_id}", str(f))
            for f in world.product_files[pid][:2]
        ]
    if kind == "job":
        return [path.replace("{job_id}", str(world.job))] if label == "private" else []
    if kind == "batch":
        return [path.replace("{batch_id}", str(world.batch))] if label == "private" else []
    if kind in ("target", "candidate"):
        return [path.replace("{" + f"{kind}_id" + "}", str(ids[kind]))]
    if kind == "rdi-library":
        return [path.replace("{library_id}", str(ids["rdi-library"]))]
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
    # the uid of the product's TDB detection appears only where that detection is shown
    return [sha, record, detection_uid(world.ids[label]["product"])]


def _visibility(world, caller: str | None, when) -> dict[str, set[str]]:
    """What access.py says, per kind, at ``when``."""
    from hcdc.archive.access import can_see_survey
    from hcdc.archive.interferometry_survey_models import Survey

    with world.catalogue.engine.connect() as conn:
        user = ANONYMOUS if caller is None else load_principal(conn, caller)
        ctx = AccessContext(conn, user, when)
        group = conn.scalar(select(Survey.group_id).where(Survey.name == SURVEY))
        oi = world.oi
        return {
            "granule": {k for k in REAL if all(ctx.can_see_granule(g) for g in oi.granules[k])},
            "l0": {k for k in LEVEL0 if ctx.can_see_granule(oi.granules[k][0])},
            "oi-file": {k for k in REAL if ctx.can_see_file(oi.files[k])},
            "oi-fit": {k for k in REAL if ctx.can_see_product(oi.fits[k])},  # R17
            "survey": {SURVEY_LABEL} if can_see_survey(conn, user, group) else set(),
            "product": {k for k in OBJECTS if ctx.can_see_product(world.ids[k]["product"])},
            "dataset": {k for k in OBJECTS if ctx.can_see_dataset(world.ids[k]["dataset"])},
            "file": {k for k in OBJECTS if ctx.can_see_file(world.ids[k]["file"])},
            "job": {"private"} if ctx.can_see_job(world.job) else set(),
            "batch": {"private"} if ctx.can_see_batch(world.batch) else set(),
            "rdi-library": {k for k in OBJECTS if ctx.can_see_rdi_library(world.ids[k]["rdi-library"])},
            "target": set(OBJECTS),  # R15: targets are public
            "candidate": {
                k
                for k in OBJECTS
                if conn.scalar(
                    select(Candidate.id).where(
                        Candidate.id == world.ids[k]["candidate"], ctx.tdb_candidates_clause()
                    )
                )
            },
        }


def _visible(kind: str, label: str, seen: dict[str, set[str]]) -> bool:
    if kind == "survey":
        return label in seen["survey"]
    if kind == "granule":
        return label in seen["granule"] or label in seen["l0"]
    if label in REAL:
        return label in seen["oi-fit" if kind == "product" else "oi-file"]
    return label in seen["product" if kind == "product-file" else kind]


def _add_rdi_libraries(world) -> None:
    """One RDI library per object (R18): built for its product, from a frame of that product, so
    that it is visible exactly when the product is; its name is a marker."""
    from hcdc.archive.rdi_models import RdiLibrary, RdiLibraryFrame

    with world.catalogue.engine.begin() as conn:
        for label in OBJECTS:
            pid = world.ids[label]["product"]
            lib = conn.execute(
                insert(RdiLibrary)
                .values(
                    name=f"rdi-leak-{label}",
                    science_product_id=pid,
                    annulus_inner_px=5.0,
                    annulus_outer_px=20.0,
                    n_candidates=1,
                    n_frames=1,
                    path=f"rdi_libraries/rdi-leak-{label}/library.fits",
                    sha256="0" * 64,
                    built_by="test",
                    created_at=dt.datetime(2026, 1, 1),
                    record={},
                )
                .returning(RdiLibrary.id)
            ).scalar_one()
            conn.execute(
                insert(RdiLibraryFrame).values(
                    library_id=lib, rank=0, product_id=pid, frame_index=0, correlation=0.9
                )
            )
            world.ids[label]["rdi-library"] = lib

def _l0_markers(world, label: str) -> list[str]:
    """Strings only a response about this observation log entry would contain: its exposure id
    (obs_id, and inside its link) and its page's link."""
    return [LEVEL0[label][1], *(f'href="/granules/{g}"' for g in world.oi.granules[label])]


def _oi_markers(world, label: str) -> list[str]:
    """Strings only a response about this OIFITS file or its granules would contain."""
    return [
        world.oi.sha256[label],
        *(f'href="/granules/{g}"' for g in world.oi.granules[label]),
        world.oi.fit_markers[label],  # the provenance record id of the file's model fit
    ]


@pytest.mark.parametrize("when", [BEFORE, AFTER], ids=["before-release", "after-release"])
def test_leak_matrix(world, client_at, when):
    add_product_candidates(world)
    _add_rdi_libraries(world)
    app = client_at(when).app
    detail, listing = _routes(app)
    assert len(detail) >= 14 and len(listing) >= 12, (detail, listing)
    assert {kind for _, kind in detail} >= {"granule", "survey", "file", "product"}
    markers = {label: _markers(world, label) for label in OBJECTS}
    markers |= {label: _oi_markers(world, label) for label in REAL}
    markers |= {label: _l0_markers(world, label) for label in LEVEL0}
    markers[SURVEY_LABEL] = [SURVEY_MARKER]
    labels = [*OBJECTS, *REAL, *LEVEL0, SURVEY_LABEL]
    checked = 0
    for caller in CALLERS:
        seen = _visibility(world, caller, when)
        expected_products = PRODUCTS_BEFORE[caller] if when == BEFORE else set(OBJECTS)
        expected_raw = RAW_BEFORE[caller] if when == BEFORE else set(OBJECTS)
        assert seen["product"] == expected_products, caller
        assert seen["dataset"] == seen["file"] == expected_raw, caller
        assert (seen["job"] == {"private"}) == (caller in ("owner", "admin")), caller
        assert seen["batch"] == seen["job"], caller
        expected_granules = (GRANULES_BEFORE if when == BEFORE else GRANULES_AFTER)[caller]
        assert seen["granule"] == seen["oi-file"] == expected_granules, caller  # R14: file with granules
        assert seen["oi-fit"] == expected_granules, caller  # R17: a fit with its file's granules
        assert seen["l0"] == (LEVEL0_BEFORE if when == BEFORE else LEVEL0_AFTER)[caller], caller
        assert bool(seen["survey"]) == (caller in SURVEY_FOLLOWERS), caller
        assert seen["candidate"] == seen["product"], caller
        assert seen["rdi-library"] == seen["product"], caller
        client = client_at(when, caller)
        hidden_markers = [m for label in OBJECTS if label not in seen["product"] for m in markers[label][1:]]
        hidden_markers += [markers[label][0] for label in OBJECTS if label not in seen["file"]]
        hidden_markers += [m for label in REAL if label not in seen["granule"] for m in markers[label]]
        hidden_markers += [f'"rdi-leak-{label}"' for label in OBJECTS if label not in seen["rdi-library"]]
        hidden_markers += [m for label in LEVEL0 if label not in seen["l0"] for m in markers[label]]
        hidden_markers += [] if seen["survey"] else markers[SURVEY_LABEL]
        hidden_markers += [] if seen["job"] else [JOB_LOG_MARKER]
        hidden_markers += [] if caller == "admin" else [TRACEBACK_MARKER]  # R10: tracebacks are staff's
        # (2) routes naming an object
        for template, kind in detail:
            for label in labels:
                visible = _visible(kind, label, seen)
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
                        if kind in ("job", "batch"):  # the owner's job log, without the tracebacks
                            leaked = [m for m in hidden_markers if m in response.text]
                            assert not leaked, f"{where} leaks {leaked}"
                        if kind in ("target", "candidate"):  # a public target lists its detections
                            leaked = [m for m in hidden_markers if m in response.text]
                            assert not leaked, f"{where} leaks {leaked}"
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
                assert not any(m in body for m in hidden_markers), (
                    where,
                    [m for m in hidden_markers if m in body],
                )
                _check_listing(path, query, response, world, seen, where)
    assert checked > 600


def _ids(world, labels: set[str], kind: str) -> set[int]:
    return {world.ids[label][kind] for label in labels}


def _check_listing(path, query, response, world, seen, where) -> None:
    kinds = {"products": "product", "datasets": "dataset", "files": "file"}
    if path == "/api/v1/rdi/libraries":
        got = {row["id"] for row in response.json()}
        assert got == _ids(world, seen["rdi-library"], "rdi-library"), where
        return
    if path.startswith("/api/v1/") and path.rsplit("/", 1)[-1] in kinds:
        kind = kinds[path.rsplit("/", 1)[-1]]
        got = {row["id"] for row in response.json()["items"]}
        expected = _ids(world, seen[kind], kind)
        if kind == "file":
            got -= {world.calibration_file}  # public at once (R2)
            expected |= {world.oi.files[label] for label in seen["oi-file"]}
        if kind == "product":
            expected |= {world.oi.fits[label] for label in seen["oi-fit"]}
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
        expected = _ids(world, seen[kind], kind)
        if kind == "file":
            got -= {world.calibration_file}
            expected |= {world.oi.files[label] for label in seen["oi-file"]}
        if kind == "product" and "target=" not in query:  # the fits have no target name
            expected |= {world.oi.fits[label] for label in seen["oi-fit"]}
        assert got == expected, where
    elif path == "/api/v1/candidates":
        got = {c["id"] for c in response.json()["items"]}
        assert got == _ids(world, seen["candidate"], "candidate"), where
    elif path == "/candidates":
        got = {int(i) for i in re.findall(r'href="/candidates/(\d+)" class="candidate-link"', response.text)}
        assert got == _ids(world, seen["candidate"], "candidate"), where
    elif path in ("/api/v1/detections", "/detections"):
        if path == "/detections":
            got = set(re.findall(r"<code>(hcdc:product/\d+/detection/\d+)</code>", response.text))
        else:
            got = {d["uid"] for d in response.json()["items"]}
        assert got == {detection_uid(world.ids[label]["product"]) for label in seen["product"]}, where
    elif path == "/api/v1/jobs":
        assert {j["id"] for j in response.json()["items"]} == ({world.job} if seen["job"] else set()), where
    elif path == "/api/v1/batches":
        got = {b["id"] for b in response.json()["items"]}
        assert got == ({world.batch} if seen["batch"] else set()), where
    elif path == "/batches" and response.status_code == 200:
        got = {int(i) for i in re.findall(r'href="/batches/(\d+)" class="batch-link"', response.text)}
        assert got == ({world.batch} if seen["batch"] else set()), where
    elif path == "/api/v1/granules" and query == "?limit=1000":
        got = {row["id"] for row in response.json()["items"]}
        assert got == {g for label in seen["granule"] | seen["l0"] for g in world.oi.granules[label]}, where
    elif path == "/granules" and query in ("", "?all_versions=true"):
        got = {int(i) for i in re.findall(r'href="/granules/(\d+)" class="granule-link"', response.text)}
        assert got == {g for label in seen["granule"] | seen["l0"] for g in world.oi.granules[label]}, where
    elif path == "/tap/sync":  # ivoa.obscore: the granule rows are those of the visible granules
        from astropy.io.votable import parse_single_table

        from hcdc.archive.identifiers import parse_publisher_did

        table = parse_single_table(io.BytesIO(response.content)).to_table()
        dids = [parse_publisher_did(str(d)) for d in table["obs_publisher_did"]]
        got = {d.key for d in dids if d.kind == "granule"}
        assert got == {g for label in seen["granule"] | seen["l0"] for g in world.oi.granules[label]}, where
        level0 = {str(o) for o, c in zip(table["obs_id"], table["calib_level"], strict=True) if c == 0}
        assert level0 >= {LEVEL0[label][1] for label in seen["l0"]}, where
    elif path in ("/surveys", "/api/v1/surveys") and response.status_code == 200:
        assert (SURVEY in response.text) == bool(seen["survey"]), where
    elif path == "/api/v1/stats":
        assert response.json()["products_by_level"].get("L2", 0) == len(seen["product"]), where
