"""SIMBAD resolution through pyvo against a local replay of real SIMBAD answers (no network, no
mock of the client): a real HTTP server on 127.0.0.1 (tests/archive/simbad_replay.py) serving the
answers stored in ../shared/data/level3/simbad; cache and offline mode on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from hcdc.archive import targets
from hcdc.archive.simbad import SimbadError, object_query, query_simbad
from hcdc.archive.tdb_models import SimbadCacheEntry, Target

from .simbad_replay import SimbadReplay, data_section, identifiers_votable


@pytest.fixture(scope="module")
def simbad_answers(shared_data: Path) -> dict[tuple[str, str], bytes]:
    folder = shared_data / "level3" / "simbad" / "astroquery_legacy_script"
    polaris_ids = data_section(folder / "query_objectids.data").decode().splitlines()
    return {
        ("object", "M 1"): data_section(folder / "m1.data"),
        ("identifiers", "Polaris"): identifiers_votable(polaris_ids),
        # a real SIMBAD error answer (its VOTable is cut short), served for this name
        ("object", "HR 8799"): data_section(folder / "query_error.data"),
    }


@pytest.fixture
def simbad(simbad_answers) -> SimbadReplay:
    with SimbadReplay(simbad_answers) as server:
        yield server


def test_query_reads_the_real_m1_answer(simbad: SimbadReplay) -> None:
    answer = query_simbad("m1", simbad.url)
    assert answer is not None and answer.main_id == "M 1"
    # 05 34 31.94 +22 00 52.2 (sexagesimal in this answer, by its UCDs and units)
    assert answer.values["ra_deg"] == pytest.approx(83.633083, abs=1e-6)
    assert answer.values["dec_deg"] == pytest.approx(22.014500, abs=1e-6)
    assert answer.sources["ra_deg"] == "SIMBAD 2011A&A...533A..10L"
    # what pyvo sent: the ADQL of hcdc.archive.simbad, to the TAP sync endpoint
    assert simbad.requests[0] == object_query("m1")


def test_identifiers_of_polaris_and_unknown_names(simbad: SimbadReplay) -> None:
    answer = query_simbad("Polaris", simbad.url)
    assert answer is not None and answer.main_id is None  # no object row stored for Polaris
    assert "HD 8890" in answer.identifiers and "* alf UMi" in answer.identifiers
    assert len(answer.identifiers) >= 40
    assert query_simbad("no such star", simbad.url) is None


def test_error_answer_and_unreachable_service_are_clear_errors(simbad: SimbadReplay) -> None:
    with pytest.raises(SimbadError, match="unreadable answer"):
        query_simbad("HR 8799", simbad.url)
    with pytest.raises(SimbadError, match="did not answer"):
        query_simbad("M 1", "http://127.0.0.1:9/sim-tap")


def test_resolution_fills_a_new_target_caches_and_works_offline(catalogue, simbad: SimbadReplay) -> None:
    with catalogue.engine.begin() as conn:
        tid = targets.resolve(conn, "M1", endpoint=simbad.url)
        target = conn.execute(select(Target).where(Target.id == tid)).one()
        assert (target.name, target.resolved, target.simbad_id) == ("M 1", "simbad", "M 1")
        assert target.ra_deg == pytest.approx(83.633083, abs=1e-6)
        assert target.sources["dec_deg"] == "SIMBAD 2011A&A...533A..10L"
        polaris = targets.resolve(conn, "NAME Polaris", endpoint=simbad.url)
        assert conn.scalar(select(SimbadCacheEntry.endpoint).limit(1)) == simbad.url
    asked = len(simbad.requests)
    with catalogue.engine.begin() as conn:
        # the identifiers SIMBAD gave are aliases: other spellings resolve without SIMBAD
        assert targets.resolve(conn, "hd8890", offline=True) == polaris
        assert targets.resolve(conn, "alpha UMi", offline=True) == polaris
        assert targets.resolve(conn, "M 1", offline=True) == tid
        # a name SIMBAD said it does not know is cached as unknown: offline gives the same answer
        with pytest.raises(targets.TargetError, match="unknown to SIMBAD"):
            targets.resolve(conn, "no such star", endpoint=simbad.url)
    assert len(simbad.requests) == asked + 2  # only the unknown name was asked (object + identifiers)
    with catalogue.engine.begin() as conn, pytest.raises(targets.TargetError, match="unknown"):
        targets.resolve(conn, "no such star", offline=True)
    assert len(simbad.requests) == asked + 2


def test_simbad_failure_falls_back_on_the_dictionary(catalogue, simbad: SimbadReplay) -> None:
    with catalogue.engine.begin() as conn:
        with pytest.raises(SimbadError):
            targets.resolve(conn, "HR 8799", endpoint=simbad.url)
        targets.add_dictionary_name(
            conn, "HR 8799", values={"parallax_mas": 24.461952, "age_myr": 42.0}, added_by="admin"
        )
        tid = targets.resolve(conn, "HR8799", endpoint=simbad.url)
        row = targets.target_dict(conn, tid)
    assert row["resolved"] == "dictionary" and row["age_myr"] == 42.0
    assert row["sources"]["parallax_mas"] == "dictionary (admin)"


def test_an_ingested_unresolved_target_is_completed_and_merged(catalogue, simbad: SimbadReplay) -> None:
    with catalogue.engine.begin() as conn:
        polaris = targets.object_target(conn, "Polaris")
        hd = targets.object_target(conn, "HD 8890")  # the same star under another OBJECT name
        targets.link(conn, "file", [(1, "Polaris"), (2, "HD 8890")])
        assert polaris != hd
        targets.complete_target(conn, polaris, simbad.url)
        assert targets.find_target(conn, "HD 8890") == polaris
        assert targets.target_dict(conn, polaris)["links"] == {"file": 2}
        assert targets.target_dict(conn, polaris)["resolved"] == "simbad"
