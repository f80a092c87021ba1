"""Ingest on SQLite and PostgreSQL: real headers, OIFITS, idempotency, versions, quarantine, copies."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import func, select

from hcdc.archive.ingest import INVALID_METADATA, UNREADABLE, Ingester, ingest
from hcdc.archive.models import Dataset, File, QuarantinedFile
from hcdc.archive.samples import TimeShiftTemplate, clone_series, write_fits
from hcdc.archive.storage import resolve_stored_path


def _rows(catalogue, *conditions) -> list:
    with catalogue.engine.connect() as conn:
        return conn.execute(select(File).where(*conditions).order_by(File.path)).all()


def _count(catalogue, model, *conditions) -> int:
    with catalogue.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model).where(*conditions))


def _summary_csv(shared_data: Path) -> dict[str, dict[str, str]]:
    """Key keywords of the 8 real headers, as recorded by the ESO archive (known answers)."""
    with open(shared_data / "sphere_headers" / "eso_archive_hdr_summary.csv", newline="") as handle:
        return {row["ARCFILE"].removesuffix(".fits").replace(":", "_"): row for row in csv.DictReader(handle)}


def test_real_sphere_headers_are_catalogued(catalogue, sphere_files, shared_data) -> None:
    summary = ingest(catalogue, [next(iter(sphere_files.values())).parent], workers=1)
    assert (summary.discovered, summary.ingested, summary.quarantined) == (8, 8, 0)
    known = _summary_csv(shared_data)
    rows = {Path(r.path).name.removesuffix(".fits"): r for r in _rows(catalogue)}
    assert set(rows) == set(known)
    for name, row in rows.items():
        expected = known[name]
        path = sphere_files[name]
        assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row.size == path.stat().st_size
        assert (row.storage, row.stored_path, row.version, row.is_current) == (
            "reference",
            str(path),
            1,
            True,
        )
        assert row.instrument == "SPHERE" and row.arm == "IFS"
        assert (row.category, row.type, row.technique) == (
            expected["DPR CATG"],
            expected["DPR TYPE"],
            expected["DPR TECH"],
        )
        assert row.dit == pytest.approx(float(expected["DET SEQ1 DIT"]))
        assert row.ndit == int(expected["DET NDIT"])
        assert row.mjd_obs == pytest.approx(float(expected["MJD-OBS"]), abs=1e-8)
        assert row.date_obs == dt.datetime.fromisoformat(expected["DATE-OBS"])
        assert row.prog_id == expected["OBS PROG ID"]
        assert row.ob_id == int(expected["OBS ID"])
        assert row.tpl_id == expected["TPL ID"]
        assert row.tpl_expno == int(expected["TPL EXPNO"])
        assert row.filter == expected["INS2 COMB IFS"]
        # ESO night: the date of DATE-OBS - 12 h
        assert row.night == (dt.datetime.fromisoformat(expected["DATE-OBS"]) - dt.timedelta(hours=12)).date()
        # the full primary header is kept, card for card
        header = fits.getheader(path)
        assert row.header[0].startswith("SIMPLE  =")
        assert len(row.header) == len([c for c in header.cards if str(c).strip()])
        dpr = [c for c in row.header if c.startswith("HIERARCH ESO DPR TYPE")]
        assert len(dpr) == 1 and expected["DPR TYPE"] in dpr[0]
        if expected["DPR CATG"] == "SCIENCE":
            assert row.target == expected["OBJECT"]
            assert not row.is_calibration and row.dataset_id is not None
            assert row.sequence_role == expected["DPR TYPE"]
        else:
            assert row.is_calibration and row.dataset_id is None and row.dataset_key is None
    # the six science files form one observation with its sequence roles
    with catalogue.engine.connect() as conn:
        datasets = conn.execute(select(Dataset)).all()
    assert len(datasets) == 1
    dataset = datasets[0]
    assert dataset.n_files == 6
    assert dataset.role_counts == {"OBJECT": 4, "OBJECT,CENTER": 1, "OBJECT,FLUX": 1}
    assert (dataset.instrument, dataset.arm, dataset.target) == ("SPHERE", "IFS", "A124420")
    assert dataset.night == dt.date(2020, 3, 7)
    assert dataset.ob_id == 2485392
    assert dataset.exposure_s == pytest.approx(64 * 6 + 4 * 64 * 8 + 12 * 10)
    assert dataset.mjd_start == pytest.approx(58916.29531841, abs=1e-8)


def test_oifits_recognised_and_invalid_quarantined(catalogue, shared_data) -> None:
    folder = shared_data / "oifits"
    valid = sorted(
        p for sub in ("real", "simulated", "synthetic") for p in (folder / sub).iterdir() if p.is_file()
    )
    valid = [p for p in valid if p.name.endswith((".fits", ".oifits", ".oifits.gz"))]
    invalid = sorted(p for p in (folder / "invalid").iterdir() if p.name.endswith(".fits"))
    assert len(invalid) == 3
    summary = ingest(catalogue, [folder], workers=1)
    assert summary.ingested == len(valid)
    assert summary.quarantined == len(invalid)
    rows = _rows(catalogue)
    assert sorted(r.path for r in rows) == sorted(str(p) for p in valid)
    assert {r.instrument for r in rows} == {"OIFITS"}
    by_name = {Path(r.path).name: r for r in rows}
    pionier = by_name["PIONIER_alfEri_2014-09-21.fits"]
    assert pionier.target == "ALP_ERI"
    assert pionier.wavelength_min == pytest.approx(1.5735, abs=1e-3)
    assert pionier.wavelength_max == pytest.approx(1.7412, abs=1e-3)
    assert pionier.night == dt.date(2014, 9, 20)
    assert by_name["contest_Mystery-Low_HK.oifits.gz"].wavelength_max == pytest.approx(2.4239, abs=1e-3)
    with catalogue.engine.connect() as conn:
        quarantined = {Path(q.path).name: q for q in conn.execute(select(QuarantinedFile)).all()}
    assert set(quarantined) == {p.name for p in invalid}
    truncated = quarantined["testdata_opt_TRUNC.fits"]
    assert truncated.reason_code == UNREADABLE
    assert truncated.reason.startswith(str(folder / "invalid" / "testdata_opt_TRUNC.fits"))
    for name in ("V1_with_V2_Tables.fits", "Multi_OIINSPOL_TESTV2.fits"):
        assert quarantined[name].reason_code == INVALID_METADATA
        assert name in quarantined[name].reason and "OIFITS" in quarantined[name].reason


def test_ingest_is_idempotent(catalogue, sphere_files) -> None:
    folder = next(iter(sphere_files.values())).parent
    first = ingest(catalogue, [folder], workers=1)
    again = ingest(catalogue, [folder], workers=1)
    rehashed = ingest(catalogue, [folder], workers=1, rehash=True)
    assert first.ingested == 8
    for summary in (again, rehashed):
        assert (summary.ingested, summary.new_versions, summary.duplicates) == (0, 0, 8)
    # the same bytes under another name are a duplicate too
    copy = folder.parent / "elsewhere" / "copy.fits"
    copy.parent.mkdir()
    copy.write_bytes(next(iter(sphere_files.values())).read_bytes())
    assert ingest(catalogue, [copy], workers=1).duplicates == 1
    assert _count(catalogue, File) == 8
    assert _count(catalogue, Dataset) == 1


def test_changed_file_becomes_a_new_version(catalogue, sphere_headers, tmp_path) -> None:
    name = "SPHER.2020-03-08T07_12_03.720"
    template = TimeShiftTemplate(sphere_headers[name])
    path = template.write(tmp_path / "in" / "frame.fits")
    ingest(catalogue, [path], workers=1)
    old_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    template.write(path, dt.datetime(2020, 3, 8, 7, 13, 0))  # same name, other bytes
    summary = ingest(catalogue, [path], workers=1)
    assert (summary.ingested, summary.new_versions, summary.duplicates) == (0, 1, 0)
    rows = _rows(catalogue)
    assert [(r.version, r.is_current) for r in sorted(rows, key=lambda r: r.version)] == [
        (1, False),
        (2, True),
    ]
    old, new = sorted(rows, key=lambda r: r.version)
    assert old.sha256 == old_sha and old.superseded_at is not None and old.dataset_id is None
    assert new.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert new.date_obs == dt.datetime(2020, 3, 8, 7, 13, 0)
    # the dataset now counts the current version only
    with catalogue.engine.connect() as conn:
        dataset = conn.execute(select(Dataset)).one()
    assert dataset.n_files == 1 and new.dataset_id == dataset.id
    # ingesting the new bytes again changes nothing
    assert ingest(catalogue, [path], workers=1, rehash=True).duplicates == 1
    assert _count(catalogue, File) == 2


def _bad_files(folder: Path, sphere_headers) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.fits"
    text.write_text("this is not a FITS file\n" * 10)
    good = write_fits(folder / "tmp.fits", sphere_headers["SPHER.2020-03-08T07_12_03.720"], shape=(64, 64))
    truncated = folder / "truncated.fits"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size - 5000])
    good.unlink()
    header = sphere_headers["SPHER.2020-03-08T07_20_53.733"].copy()
    del header["DATE-OBS"], header["MJD-OBS"]
    no_date = write_fits(folder / "no_date.fits", header)
    return {"text": text, "truncated": truncated, "no_date": no_date}


def test_bad_files_in_the_middle_of_a_batch(catalogue, sphere_files, sphere_headers, tmp_path) -> None:
    bad = _bad_files(next(iter(sphere_files.values())).parent, sphere_headers)  # same folder as the good
    summary = ingest(catalogue, [tmp_path / "raw"], workers=1)
    assert (summary.discovered, summary.ingested, summary.quarantined) == (11, 8, 3)
    assert summary.quarantine_reasons == {UNREADABLE: 2, INVALID_METADATA: 1}
    reasons = {Path(q["path"]).name: q for q in summary.quarantined_files}
    assert reasons["no_date.fits"]["reason_code"] == INVALID_METADATA
    assert "DATE-OBS" in reasons["no_date.fits"]["reason"]
    assert "truncated" in reasons["truncated.fits"]["reason"]
    for item in reasons.values():
        assert item["reason"].startswith(item["path"] + ":")  # names the file
    # no half-written rows: bad files have no file row
    assert {Path(r.path).name for r in _rows(catalogue)} == {p.name for p in sphere_files.values()}
    # a second run quarantines again without duplicating quarantine rows
    again = ingest(catalogue, [tmp_path / "raw"], workers=1)
    assert (again.duplicates, again.quarantined) == (8, 3)
    with catalogue.engine.connect() as conn:
        attempts = dict(conn.execute(select(QuarantinedFile.path, QuarantinedFile.attempts)).all())
    assert sorted(attempts.values()) == [2, 2, 2]
    # once fixed, the file is catalogued and leaves the quarantine
    write_fits(bad["no_date"], sphere_headers["SPHER.2020-03-08T07_20_53.733"], shape=(2, 2))
    fixed = ingest(catalogue, [bad["no_date"]], workers=1)
    assert fixed.ingested == 1
    assert _count(catalogue, QuarantinedFile, QuarantinedFile.path == str(bad["no_date"])) == 0


def test_copy_into_storage(catalogue, sphere_files) -> None:
    folder = next(iter(sphere_files.values())).parent
    summary = ingest(catalogue, [folder], copy=True, workers=1)
    assert summary.ingested == 8
    for row in _rows(catalogue):
        assert row.storage == "copy"
        assert row.stored_path == f"objects/{row.sha256[:2]}/{row.sha256}/{Path(row.path).name}"
        stored = resolve_stored_path(row.storage, row.stored_path, catalogue.storage_root)
        assert stored.read_bytes() == Path(row.path).read_bytes()
    leftovers = [p for p in catalogue.storage_root.rglob(".incoming-*")]
    assert leftovers == []


def test_parallel_batch_matches_inline(catalogue, sphere_headers, tmp_path) -> None:
    header = sphere_headers["SPHER.2020-03-08T07_29_43.729"]
    paths = clone_series(
        header, tmp_path / "many", 60, dt.datetime(2020, 3, 8, 7, 0, 0), dt.timedelta(seconds=30)
    )
    summary = ingest(catalogue, [tmp_path / "many"], workers=2)
    assert summary.workers == 2
    assert (summary.ingested, summary.quarantined) == (60, 0)
    rows = _rows(catalogue)
    assert len({r.sha256 for r in rows}) == 60
    assert sorted(r.date_obs for r in rows) == [
        dt.datetime(2020, 3, 8, 7, 0, 0) + i * dt.timedelta(seconds=30) for i in range(60)
    ]
    assert sorted(r.path for r in rows) == sorted(str(p) for p in paths)


def test_missing_argument_is_reported(catalogue, tmp_path) -> None:
    summary = ingest(catalogue, [tmp_path / "nope"], workers=1)
    assert summary.missing_paths == [str(tmp_path / "nope")]
    assert summary.discovered == 0


def test_concurrent_run_conflicts_are_duplicates(catalogue, sphere_files) -> None:
    """A run whose view of the catalogue is stale: the database constraints decide, nothing breaks."""
    folder = next(iter(sphere_files.values())).parent

    class StaleIngester(Ingester):
        def _load_state(self, conn) -> None:
            super()._load_state(conn)  # snapshot taken: empty catalogue
            ingest(catalogue, [folder], workers=1)  # ... and another run catalogues everything

    summary = StaleIngester(catalogue, workers=1).run([folder])
    assert (summary.ingested, summary.duplicates, summary.quarantined) == (0, 8, 0)
    assert _count(catalogue, File) == 8
    assert _count(catalogue, Dataset) == 1


def test_catalogue_row_gives_back_the_extracted_metadata(catalogue, sphere_files) -> None:
    """metadata_from_row(row) == read_file(path) metadata: nothing lost between extraction and storage."""
    from hcdc.archive.associations import metadata_from_row
    from hcdc.instruments.registry import read_file

    ingest(catalogue, list(sphere_files.values()), workers=1)
    for row in _rows(catalogue):
        expected, _ = read_file(row.path)
        assert metadata_from_row(row) == expected


def test_a_row_the_database_refuses_is_quarantined_alone(catalogue, sphere_files, monkeypatch) -> None:
    """A value the database cannot store fails only that file (the group is retried file by file)."""
    import hcdc.archive.inspection as inspection_module  # where ingest's workers inspect a file

    victim = "SPHER.2020-03-08T07_20_53.733"
    original = inspection_module.metadata_values

    def broken(meta):
        values = original(meta)
        if meta.date_obs.replace(microsecond=0) == dt.datetime(2020, 3, 8, 7, 20, 53):
            values["instrument"] = None  # NOT NULL column
        return values

    monkeypatch.setattr(inspection_module, "metadata_values", broken)
    summary = ingest(catalogue, list(sphere_files.values()), workers=1)
    assert (summary.ingested, summary.quarantined) == (7, 1)
    assert summary.quarantine_reasons == {"database-error": 1}
    (item,) = summary.quarantined_files
    assert item["path"] == str(sphere_files[victim]) and "database refused" in item["reason"]
    assert _count(catalogue, File) == 7
