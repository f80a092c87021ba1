"""Observation -> Reduction -> Detection from validated Level 2 products, rule R15, JSON exchange
(round trip, schema, tolerance) and HCI-FITS (the real ALICE file; hcdc's export follows the
spec), on SQLite and PostgreSQL.

The products are real: the access world of tests/web (a worker-made ``l2-user-cube`` product with
one companion, registered for datasets in every access state)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema_rs
import pytest
from sqlalchemy import func, select, update
from web.world import AFTER, BEFORE, L2Source, World, build_world, make_l2_source

from hcdc.archive import accounts, targets
from hcdc.archive.access import (
    ANONYMOUS,
    AccessContext,
    load_principal,
    local_operator,
    visible_tdb_observations_clause,
    visible_tdb_reductions_clause,
)
from hcdc.archive.db import init_data_centre
from hcdc.archive.exchange import hcifits, tdb_json
from hcdc.archive.exchange.hcifits_tdb import export_reduction, read_as_exchange
from hcdc.archive.pipeline_models import Product
from hcdc.archive.tdb import MJD_TO_JD, detections_table
from hcdc.archive.tdb_models import Candidate, Detection, Observation, Reduction, TargetLink

ALICE = "level3/hcifits/hlsp_alice_hst_nicmos_10849-1rxs-j161410.6-230542_f110w_v1_multi-roll.fits"


@pytest.fixture(scope="session")
def l2_source(tmp_path_factory) -> L2Source:
    return make_l2_source(tmp_path_factory.mktemp("l2source"))


@pytest.fixture
def world(tmp_path: Path, database_url: str, l2_source: L2Source) -> World:
    w = build_world(tmp_path, database_url, l2_source)
    yield w
    w.catalogue.close()


def _validate(world: World, *labels: str) -> None:
    with world.catalogue.engine.begin() as conn:
        for label in labels:
            accounts.review_product(conn, local_operator(), world.ids[label]["product"], "validated")


def test_validation_sends_the_product_to_the_tdb(world: World, l2_source: L2Source) -> None:
    pid = world.ids["public"]["product"]
    _validate(world, "public")
    expected = l2_source.summary["detections"]
    assert expected, "the world's product has its companion"
    with world.catalogue.engine.connect() as conn:
        obs = conn.execute(select(Observation)).one()
        red = conn.execute(select(Reduction)).one()
        dets = detections_table(conn)
        dataset_mjd = world.ids["public"]["dataset"]
        links = {(r.kind, r.object_id) for r in conn.execute(select(TargetLink))}
    assert obs.uid == f"hcdc:dataset/{dataset_mjd}" and obs.origin == "level2"
    assert obs.instrument == "SPHERE" and obs.filter == "DB_H23"
    assert obs.date_jd > MJD_TO_JD and obs.pixel_scale_mas == pytest.approx(12.25)
    assert (red.uid, red.product_id, red.validated, red.software) == (
        f"hcdc:product/{pid}",
        pid,
        True,
        "hcdc",
    )
    assert red.algorithm == l2_source.summary["algorithm"]
    assert red.detection_limits["separation_mas"] and red.detection_limits["nsigma"] is not None
    assert len(dets) == len(expected)
    for det, src in zip(dets, expected, strict=True):
        assert det["target"] == "51 Eri" and det["survey"] is None
        assert det["separation_mas"] == pytest.approx(src["separation_mas"])
        assert det["snr"] == pytest.approx(src["snr"])
        # this product's images are in the detector frame: no PA east of north, no sky offsets
        assert det["pa_deg"] is None and det["dra_mas"] is None
        assert det["extra"]["pa_detector_deg"] == pytest.approx(src["pa_deg"])
    assert ("product", pid) in links and ("dataset", world.ids["public"]["dataset"]) in links
    # with the host's H magnitude known, a re-validation gives apparent magnitudes; same rows
    with world.catalogue.engine.begin() as conn:
        targets.set_values(conn, targets.find_target(conn, "51 Eri"), {"mag_h": 4.60}, "2MASS")
    _validate(world, "public")
    with world.catalogue.engine.connect() as conn:
        again = detections_table(conn)
    assert [d["uid"] for d in again] == [d["uid"] for d in dets]
    contrast = again[0]["contrast"]
    assert again[0]["magnitude"] == pytest.approx(4.60 - 2.5 * math.log10(contrast))
    # flagged: kept, marked not validated
    with world.catalogue.engine.begin() as conn:
        accounts.review_product(conn, local_operator(), pid, "flagged", "bad centring")
        assert conn.scalar(select(Reduction.validated)) is False


def test_north_oriented_products_give_sky_offsets(world: World, l2_source: L2Source) -> None:
    pid = world.ids["embargoed"]["product"]
    summary = {**l2_source.summary, "pa_reference": "sky"}  # as a product with known orientation says
    with world.catalogue.engine.begin() as conn:
        conn.execute(update(Product).where(Product.id == pid).values(summary=summary))
    _validate(world, "embargoed")
    with world.catalogue.engine.connect() as conn:
        (det,) = detections_table(conn)
    src = summary["detections"][0]
    pa = math.radians(src["pa_deg"])
    assert det["pa_deg"] == pytest.approx(src["pa_deg"])
    assert det["dra_mas"] == pytest.approx(src["separation_mas"] * math.sin(pa))
    assert det["ddec_mas"] == pytest.approx(src["separation_mas"] * math.cos(pa))
    # the errors Level 2 measured (fake injection), carried to the sky offsets with the Jacobian
    assert src["separation_err_mas"] > 0 and src["pa_err_deg"] > 0
    assert det["separation_err_mas"] == pytest.approx(src["separation_err_mas"])
    assert det["pa_err_deg"] == pytest.approx(src["pa_err_deg"])
    s_sep, s_pa = src["separation_err_mas"], math.radians(src["pa_err_deg"]) * src["separation_mas"]
    assert det["dra_err_mas"] == pytest.approx(math.hypot(s_sep * math.sin(pa), s_pa * math.cos(pa)))
    assert det["ddec_err_mas"] == pytest.approx(math.hypot(s_sep * math.cos(pa), s_pa * math.sin(pa)))
    assert -1 < det["extra"]["radec_corr"] < 1


def _visible(conn, user, when) -> set[str]:
    clause = visible_tdb_reductions_clause(user, when)
    return {r.uid for r in conn.execute(select(Reduction.uid).where(clause))}


def test_R15_tdb_rows_follow_their_products_and_surveys(world: World) -> None:
    _validate(world, *world.ids)
    with world.catalogue.engine.begin() as conn:
        tdb_json.import_tdb(
            conn,
            {
                "format": "hcdc-tdb",
                "version": 1,
                "targets": [
                    {
                        "name": "HR 8799",
                        "observations": [
                            {
                                "uid": "naco:1",
                                "survey": "shine",
                                "release_date": "2027-01-01T00:00:00",
                                "reductions": [{"uid": "naco:1/r", "detections": [{"separation_mas": 1720}]}],
                            }
                        ],
                    }
                ],
            },
        )
        uid = {label: f"hcdc:product/{ids['product']}" for label, ids in world.ids.items()}
        member, owner = load_principal(conn, "member"), load_principal(conn, "owner")
        assert _visible(conn, ANONYMOUS, BEFORE) == {uid["public"]}
        assert _visible(conn, member, BEFORE) == {uid["public"], uid["survey"], "naco:1/r"}
        assert uid["private"] in _visible(conn, owner, BEFORE) and "naco:1/r" not in _visible(
            conn, owner, BEFORE
        )
        assert _visible(conn, ANONYMOUS, AFTER) == {*uid.values(), "naco:1/r"}
        assert _visible(conn, local_operator(), BEFORE) == {*uid.values(), "naco:1/r"}
        # the per-object form agrees with the SQL form, naming R15
        for user in (ANONYMOUS, member, owner):
            ctx = AccessContext(conn, user, BEFORE)
            seen = _visible(conn, user, BEFORE)
            for rid, ruid in conn.execute(select(Reduction.id, Reduction.uid)):
                decision = ctx.can_see_tdb_reduction(rid)
                assert decision.allowed == (ruid in seen) and decision.rule == "R15", (user, ruid, decision)
            observations = {
                r.uid
                for r in conn.execute(
                    select(Observation.uid).where(visible_tdb_observations_clause(user, BEFORE))
                )
            }
            assert ("naco:1" in observations) == (user is member)


def test_alice_hcifits_file_is_read_with_its_departures(shared_data: Path) -> None:
    path = shared_data / ALICE
    content = hcifits.read_hcifits(path)
    assert content.target == "1RXS-J161410.6-230542" and content.alt_names == ["2MASS J16141107-2305362"]
    assert len(content.images) == 2 and content.reduced.shape == (2, 80, 80)
    assert content.images[0]["wavelength_um"] == pytest.approx(1.12347)  # 11234.7 'Angstroms'
    assert content.images[0]["ut_date"] == "2007-03-27"  # from the misspelt ..._Observaton column
    first, second = content.candidates
    assert first.sep_mas[0] == pytest.approx(401.8, abs=0.1) and first.pa_deg[0] == pytest.approx(
        310.88, abs=0.01
    )
    assert first.snr[0] == pytest.approx(25.7, abs=0.05)
    assert second.sep_mas[0] == pytest.approx(2688.0, abs=0.1) and second.snr[0] == pytest.approx(
        181.2, abs=0.05
    )
    assert first.contrast[0] == pytest.approx(0.005484, rel=1e-3)  # a flux ratio (UNITLESS)
    assert content.nsigma == 1 and content.limits[0]["separation_mas"][1] == pytest.approx(151.303)
    problems = hcifits.check_hcifits(path)
    assert "DATA_INFORMATION: column UT_Midpoint_Date_of_Observation is missing" in problems
    assert "SOURCE_DETECTION: column Sep has unit 'as', spec 'arcsec'" in problems
    assert not any("format 1D" in p for p in problems)  # 1D is D


def test_alice_import_and_hcifits_export_follow_the_spec(
    world: World, shared_data: Path, tmp_path: Path
) -> None:
    _validate(world, "public")
    with world.catalogue.engine.begin() as conn:
        counts = tdb_json.import_tdb(conn, read_as_exchange(shared_data / ALICE))
        alice = targets.target_dict(conn, targets.find_target(conn, "2MASS J16141107-2305362"))
        rows = detections_table(conn, target_id=alice["id"])
        reduction_id = conn.scalar(select(Reduction.id).where(Reduction.product_id.is_not(None)))
        out = export_reduction(conn, reduction_id, world.catalogue.storage_root, tmp_path / "out.fits")
        tdb_rows = detections_table(conn, visible=Reduction.id == reduction_id)
    assert counts["detections"] == 2 and alice["pmra_masyr"] == -11.9
    assert "2000A&A...355L..27H" in alice["sources"]["pmra_masyr"]
    assert rows[0]["date_jd"] == pytest.approx(54186.87880415 + MJD_TO_JD)
    assert sorted(round(r["separation_mas"], 1) for r in rows) == [401.8, 2688.0]
    assert hcifits.check_hcifits(out) == []
    back = hcifits.read_hcifits(out)
    assert back.warnings == [] and len(back.candidates) == len(tdb_rows)
    for cand, row in zip(back.candidates, tdb_rows, strict=True):
        assert cand.sep_mas[0] == pytest.approx(row["separation_mas"])
        # unknown values (no sky PA for this detector-frame product) are NaN in the file
        assert (
            math.isnan(cand.pa_deg[0])
            if row["pa_deg"] is None
            else cand.pa_deg[0] == pytest.approx(row["pa_deg"])
        )
        assert cand.contrast[0] == pytest.approx(row["contrast"])  # written in dmag, read back as a ratio
    assert back.limits[0]["separation_mas"] and back.sensitivity.shape == back.reduced.shape


def _without_date(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "exported_at"}


def test_json_round_trip_loses_nothing_and_follows_the_schema(
    world: World, shared_data: Path, tmp_path: Path, database_url: str
) -> None:
    _validate(world, *world.ids)
    with world.catalogue.engine.begin() as conn:
        tdb_json.import_tdb(conn, read_as_exchange(shared_data / ALICE))
        targets.set_values(conn, targets.find_target(conn, "51 Eri"), {"age_myr": 20.0}, "species")
        first = tdb_json.export_tdb(conn)
    jsonschema_rs.validator_for(tdb_json.schema()).validate(first)
    path = tdb_json.write_export(first, tmp_path / "tdb.json")
    other = init_data_centre(
        tmp_path / "other", database_url=database_url.replace("catalog.sqlite", "other.sqlite")
    )
    try:
        with other.engine.begin() as conn:
            tdb_json.import_tdb(conn, tdb_json.read_json(path))
            tdb_json.import_tdb(conn, tdb_json.read_json(path))  # twice: idempotent by uid
            second = tdb_json.export_tdb(conn)
    finally:
        other.close()
    assert _without_date(second) == _without_date(json.loads(path.read_text()))
    n = sum(
        len(r["detections"]) for t in first["targets"] for o in t["observations"] for r in o["reductions"]
    )
    assert n >= len(world.ids) + 2


def test_import_tolerates_missing_and_unknown_columns(catalogue, tmp_path: Path) -> None:
    naco = {
        "format": "hcdc-tdb",
        "version": 1,
        "source": "NACO survey (partial table)",
        "targets": [
            {
                "name": "HR 8799",
                "parallax_mas": 24.46,
                "observations": [
                    {
                        "date_jd": 2455100.5,
                        "instrument": "NACO",
                        "seeing_arcsec": 0.8,
                        "reductions": [
                            {
                                "algorithm": "LOCI",
                                "detections": [
                                    {
                                        "separation_mas": 1720,
                                        "pa_deg": 65.5,
                                        "candidate": "b",
                                        "flag": "good",
                                    },
                                    {"dra_mas": 300.0},
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    with catalogue.engine.begin() as conn:
        counts = tdb_json.import_tdb(conn, naco)
        out = tdb_json.export_tdb(conn)
    assert counts == {"targets": 1, "observations": 1, "reductions": 1, "detections": 2, "candidates": 0}
    obs = out["targets"][0]["observations"][0]
    assert obs["seeing_arcsec"] == 0.8 and obs["telescope"] is None
    dets = obs["reductions"][0]["detections"]
    assert {d.get("flag") for d in dets} == {"good", None}
    assert {d["candidate"] for d in dets} == {"b", None}
    assert out["targets"][0]["sources"] == {"parallax_mas": "import"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ('{"format": "other"}', "not an hcdc TDB exchange file"),
        ('{"format": "hcdc-tdb", "version": 9, "targets": []}', "version 9"),
    ],
)
def test_bad_exchange_files_are_named_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(tdb_json.ExchangeError, match=message) as info:
        tdb_json.read_json(path)
    assert str(path) in str(info.value)


def test_bad_hcifits_is_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "x.fits"
    path.write_bytes(b"not fits at all" * 300)
    with pytest.raises(hcifits.HciFitsError, match=str(path)):
        hcifits.read_hcifits(path)


def test_detection_filters(world: World) -> None:
    _validate(world, *world.ids)
    with world.catalogue.engine.connect() as conn:
        every = detections_table(conn)
        assert every and detections_table(conn, min_snr=1e9) == []
        sep = every[0]["separation_mas"]
        assert detections_table(conn, max_separation_mas=sep - 1) == [
            d for d in every if d["separation_mas"] <= sep - 1
        ]
        assert {d["survey"] for d in detections_table(conn, survey="shine")} == {"shine"}
        assert detections_table(conn, status="bound") == []
        assert len(detections_table(conn, status="ungrouped")) == len(every)
        assert Detection.__tablename__ == "tdb_detections"


def test_real_bound_companion_is_grouped_and_found_bound(catalogue, shared_data: Path) -> None:
    """51 Eri b (De Rosa et al. 2020, 14 epochs) imported as NIRC2/GPI detections of one target,
    with its host's Gaia DR3 astrometry: grouped into one candidate, verdict bound."""
    import csv

    from hcdc.archive.tdb import group_candidates
    from hcdc.science.level3.astrometry import RelativeAstrometry

    rows = list(csv.DictReader((shared_data / "level3/bound/51eri_b_derosa2020_table2.csv").open()))
    observations = []
    for n, row in enumerate(rows):
        one = RelativeAstrometry.from_seppa(
            "b", [float(row["epoch_mjd"])], [float(row["sep_mas"])], [float(row["sep_err_mas"])],
            [float(row["pa_deg"])], [float(row["pa_err_deg"])],
        )  # fmt: skip
        detection = {
            "uid": f"derosa:{n}",
            "separation_mas": float(row["sep_mas"]),
            "pa_deg": float(row["pa_deg"]),
            "dra_mas": float(one.ra[0]),
            "ddec_mas": float(one.dec[0]),
            "dra_err_mas": float(one.cov[0, 0, 0] ** 0.5),
            "ddec_err_mas": float(one.cov[0, 1, 1] ** 0.5),
        }
        observations.append(
            {
                "uid": f"derosa:{n}:obs",
                "date_jd": float(row["epoch_mjd"]) + MJD_TO_JD,
                "instrument": row["instrument"],
                "filter": row["filter"],
                "reductions": [{"uid": f"derosa:{n}:red", "validated": True, "detections": [detection]}],
            }
        )
    host = {  # Gaia DR3 (hosts.csv)
        "ra_deg": 69.40074849308137,
        "dec_deg": -2.473833383625505,
        "pmra_masyr": 44.04884090373149,
        "pmdec_masyr": -64.02842203088811,
        "parallax_mas": 33.4390,
        "parallax_err_mas": 0.0777,
    }
    data = {
        "format": "hcdc-tdb",
        "version": 1,
        "targets": [{"name": "51 Eri", **host, "observations": observations}],
    }
    with catalogue.engine.begin() as conn:
        tdb_json.import_tdb(conn, data)
        tid = targets.find_target(conn, "51 Eri")
        counts = group_candidates(conn, tid)
        (row,) = conn.execute(select(Candidate)).all()
        members = conn.scalar(
            select(func.count()).select_from(Detection).where(Detection.candidate_id == row.id)
        )
    assert counts == {
        "candidates": 1, "grouped": len(rows), "ungrouped": 0, "untested": 0, "missing_host_values": []
    }  # fmt: skip
    assert members == len(rows)
    assert row.status == "bound", row.statistic["reason"]
    assert row.statistic["verdict"] == "bound" and row.statistic["n_epochs"] == len(rows)


def test_admin_regrouping_is_kept_by_automatic_grouping(catalogue) -> None:
    from hcdc.archive.tdb import assign_detection, group_candidates

    data = {
        "format": "hcdc-tdb",
        "version": 1,
        "targets": [
            {
                "name": "HR 8799",
                "observations": [
                    {
                        "uid": f"o{n}",
                        "date_jd": 2455000.5 + 365 * n,
                        "reductions": [
                            {
                                "uid": f"r{n}",
                                "validated": True,
                                "detections": [
                                    {"uid": f"d{n}", "dra_mas": 1500.0, "ddec_mas": 700.0, "dra_err_mas": 5.0,
                                     "ddec_err_mas": 5.0},
                                ],
                            }
                        ],
                    }
                    for n in range(2)
                ],
            }
        ],
    }  # fmt: skip
    with catalogue.engine.begin() as conn:
        tdb_json.import_tdb(conn, data)
        tid = targets.find_target(conn, "HR 8799")
        assert group_candidates(conn, tid)["candidates"] == 1  # no host astrometry: co-moving only
        first = conn.scalar(select(Detection.id).where(Detection.uid == "d0"))
        assign_detection(conn, first, "b")
        group_candidates(conn, tid)
        joined = select(Detection.uid, Candidate.label).join(
            Candidate, Candidate.id == Detection.candidate_id
        )
        labels = {r.uid: r.label for r in conn.execute(joined)}
        statuses = set(conn.scalars(select(Candidate.status)))
    assert labels["d0"] == "b" and labels["d1"] != "b"
    assert statuses == {"undetermined"}  # without the host's astrometry no test is run


def test_own_level2_detections_with_measured_errors_are_grouped_and_tested(
    world: World, l2_source: L2Source
) -> None:
    """The six products of the world (epochs 2020-2026) carry the same real Level 2 detection with
    the errors Level 2 measured; as north-oriented products of 51 Eri (Gaia DR3 motion) they are
    grouped automatically into one candidate, which does not follow the background track: bound."""
    from hcdc.archive.tdb import group_candidates

    summary = {**l2_source.summary, "pa_reference": "sky"}
    assert summary["detections"][0]["separation_err_mas"] > 0
    with world.catalogue.engine.begin() as conn:
        conn.execute(update(Product).values(summary=summary))
    _validate(world, *world.ids)
    with world.catalogue.engine.begin() as conn:
        tid = targets.find_target(conn, "51 Eri")
        targets.set_values(
            conn, tid, {"ra_deg": 69.40074849308137, "dec_deg": -2.473833383625505, "pmra_masyr": 44.0488,
                        "pmdec_masyr": -64.0284, "parallax_mas": 33.439}, "Gaia DR3",
        )  # fmt: skip
        counts = group_candidates(conn, tid)
        (cand,) = conn.execute(select(Candidate).where(Candidate.target_id == tid)).all()
    assert counts["grouped"] == 6 and counts["candidates"] == 1 and counts["untested"] == 0
    assert cand.status == "bound", cand.statistic["reason"]
    # six reductions (three of one night, 2026-01-10) over six years
    assert cand.statistic["n_epochs"] == 6 and cand.statistic["baseline_yr"] > 5
