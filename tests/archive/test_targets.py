"""Targets of the TDB: name normalisation, the internal dictionary, aliases, and ingested files
linked to their target by OBJECT name (real SPHERE headers), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import func, select

from hcdc.archive import targets
from hcdc.archive.ingest import ingest
from hcdc.archive.models import File
from hcdc.archive.samples import write_fits
from hcdc.archive.tdb_models import Target, TargetLink


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        (["51Eri", "51 ERI", "51 Eri", "51_eri", "  51   eri "], "51ERI"),
        (["HD 29391", "HD29391", "HD_29391", "hd  29391"], "HD29391"),
        (["beta Pic", "bet Pic", "β Pic", "* bet Pic", "BETA PIC"], "BETPIC"),
        (["NAME Polaris", "Polaris"], "POLARIS"),
        (["V* alf UMi", "alpha UMi", "α UMi"], "ALFUMI"),
        (["1RXS J161410.6-230542", "1RXS-J161410.6-230542"], None),
    ],
)
def test_normalize_name_maps_spellings_to_one_key(spellings: list[str], key: str | None) -> None:
    keys = {targets.normalize_name(s) for s in spellings}
    if key is not None:
        assert keys == {key}
    else:  # a hyphen is part of a name, not a separator: these stay distinct
        assert len(keys) == 2


def test_distinct_names_stay_distinct() -> None:
    assert targets.normalize_name("HD 2939") != targets.normalize_name("HD 29391")
    assert targets.normalize_name("HR 8799") != targets.normalize_name("HD 8799")
    assert targets.normalize_name("") == ""


def _science_files(tmp_path: Path, sphere_headers: dict[str, fits.Header], names: list[str]) -> list[Path]:
    """Real SPHERE science headers, each given one OBJECT spelling (no OBS TARG NAME)."""
    science = [h for h in sphere_headers.values() if h.get("HIERARCH ESO DPR CATG") == "SCIENCE"]
    paths = []
    for n, (header, name) in enumerate(zip(science, names, strict=False)):
        header = header.copy()
        header["OBJECT"] = name
        header.remove("HIERARCH ESO OBS TARG NAME", ignore_missing=True)
        paths.append(write_fits(tmp_path / "raw" / f"f{n}.fits", header))
    return paths


def test_ingested_files_link_to_one_target_whatever_the_spelling(
    catalogue, tmp_path: Path, sphere_headers: dict[str, fits.Header]
) -> None:
    # HD 29391 is 51 Eri: an admin says so in the dictionary (offline, no SIMBAD)
    with catalogue.engine.begin() as conn:
        targets.add_dictionary_name(conn, "HD 29391", "51 Eri", {"parallax_mas": 33.439}, added_by="admin")
    names = ["51Eri", "HD 29391", "51 ERI", "hd29391", "51 Eri", "HR 8799"]
    paths = _science_files(tmp_path, sphere_headers, names)
    summary = ingest(catalogue, paths)
    assert summary.ingested == len(paths), summary
    with catalogue.engine.connect() as conn:
        links = conn.execute(
            select(TargetLink.target_id, File.target).join(File, File.id == TargetLink.object_id)
        ).all()
        by_name = {row.target: row.target_id for row in links}
        assert len(links) == len(paths)
        eri = {by_name[n] for n in names[:5]}
        assert len(eri) == 1 and by_name["HR 8799"] not in eri
        eri_target = conn.execute(select(Target).where(Target.id == eri.pop())).one()
        # the dictionary made the target with its values and their source
        assert targets.normalize_name(eri_target.name) == "51ERI"  # the first spelling ingested
        assert eri_target.resolved == "dictionary"
        assert eri_target.parallax_mas == pytest.approx(33.439)
        assert eri_target.sources == {"parallax_mas": "dictionary (admin)"}
        assert conn.scalar(select(func.count()).select_from(Target)) == 2
        shown = targets.target_dict(conn, eri_target.id)
    assert shown["links"] == {"file": 5}
    assert shown["distance_pc"] == pytest.approx(1000 / 33.439)
    # one alias per normalised name: the first spelling seen of each
    assert {targets.normalize_name(a) for a in shown["aliases"]} == {"51ERI", "HD29391"}


def test_aliases_belong_to_one_target_and_unresolved_duplicates_merge(catalogue) -> None:
    with catalogue.engine.begin() as conn:
        eri = targets.create_target(conn, "51 Eri", {"ra_deg": 69.4}, {"ra_deg": "test"})
        hd = targets.object_target(conn, "HD 29391")  # made at ingest, unresolved
        other = targets.create_target(conn, "HR 8799")
        with pytest.raises(targets.TargetError, match="already belongs to target"):
            targets.add_aliases(conn, eri, ["HR 8799"], "user")
        # SIMBAD later says HD 29391 is 51 Eri: the unresolved target is merged, its links moved
        targets.link(conn, "file", [(77, "HD 29391")])
        targets.add_aliases(conn, eri, ["HD 29391"], "simbad", merge_unresolved=True)
        assert targets.find_target(conn, "hd29391") == eri
        assert conn.scalar(select(TargetLink.target_id).where(TargetLink.object_id == 77)) == eri
        assert conn.scalar(select(Target.id).where(Target.id == hd)) is None
        assert targets.find_target(conn, "HR8799") == other
        with pytest.raises(targets.TargetError, match="exists already"):
            targets.create_target(conn, "51eri")


def test_set_values_records_their_source_and_refuses_unknown_fields(catalogue) -> None:
    with catalogue.engine.begin() as conn:
        tid = targets.create_target(conn, "beta Pic")
        targets.set_values(conn, tid, {"age_myr": 18.5, "spectral_type": "A6V"}, "Miret-Roig et al. 2020")
        row = targets.target_dict(conn, tid)
        with pytest.raises(targets.TargetError, match="unknown target field"):
            targets.set_values(conn, tid, {"mass": 1.0}, "x")
    assert row["age_myr"] == 18.5 and row["spectral_type"] == "A6V"
    assert row["sources"] == {"age_myr": "Miret-Roig et al. 2020", "spectral_type": "Miret-Roig et al. 2020"}
    assert targets.normalize_name("β Pic") in {targets.normalize_name(a) for a in row["aliases"]}


def test_offline_resolution_of_an_unknown_name_is_a_clear_error(catalogue) -> None:
    with (
        catalogue.engine.begin() as conn,
        pytest.raises(targets.TargetError, match="unknown to the catalogue"),
    ):
        targets.resolve(conn, "HIP 65426", offline=True)


def test_two_transactions_creating_one_target_at_once_share_it(catalogue) -> None:
    """Two ingests (a watcher and an operator's ingest by hand) meet a new OBJECT name at the same
    time: the second waits for the first's commit and links to its target instead of failing its
    whole transaction on the alias's unique key (found by tests/faults/test_concurrent_processes.py
    on PostgreSQL). SQLite serialises writers (BEGIN IMMEDIATE), so the race needs PostgreSQL."""
    import threading

    if catalogue.engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time in: the two creations cannot overlap")
    engine = catalogue.engine
    first, second = engine.connect(), engine.connect()
    try:
        t1, t2 = first.begin(), second.begin()
        mine = targets.object_target(first, "HD 95086")  # inserted, not committed yet
        assert targets.find_target(second, "HD 95086") is None  # invisible to the other
        found: dict[str, object] = {}

        def other() -> None:
            try:
                found["id"] = targets.object_target(second, "HD95086")  # blocks on the unique key
            except Exception as exc:  # noqa: BLE001 - reported below
                found["error"] = exc

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), f"the second creation should wait for the first commit: {found}"
        t1.commit()
        thread.join(30)
        assert "error" not in found, found.get("error")
        assert found["id"] == mine
        targets.link(second, "file", [(1, "hd 95086")])  # the transaction is still usable
        t2.commit()
    finally:
        first.close()
        second.close()
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Target)) == 1
        assert conn.scalar(select(TargetLink.target_id)) == mine
